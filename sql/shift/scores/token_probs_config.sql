-- name: shift/scores/token_probs_config
-- description: The perplexity scorer config under which to compare token-probability
--   histograms (shift/scores/token_probs): as shift/scores/score_config over scores_perplexity_v1, but only
--   rows that carry token probabilities (token_probs not NULL, i.e. scored with
--   keep_token_probs) count, so a later run without them does not hide an earlier one with
--   them: the config_hash of the latest run (largest run_id) that stored token probabilities
--   for a sample of the measured generation (only the given origin unless origin = '*'), the
--   larger config_hash on a tie. No row when there is none.
-- param generation INTEGER: the generation measured
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- score table scores_perplexity_v1: token_probs FLOAT[]
-- tables: samples
-- columns: config_hash, run_id
SELECT s.config_hash, s.run_id
FROM scores_perplexity_v1 AS s
JOIN samples AS x ON x.sample_id = s.sample_id
WHERE x.generation = $generation
  AND ($origin = '*' OR x.origin = $origin)
  AND s.token_probs IS NOT NULL
ORDER BY s.run_id DESC, s.config_hash DESC
LIMIT 1
