-- name: shift/scores/score_config
-- description: The scorer config under which to compare two generations, for a score table
--   that may hold rows of several configs (config_hash: one per set of scorer options, e.g.
--   perplexity under two reference models): the config_hash of the latest run (the largest
--   run_id; run ids are time-ordered) that scored a sample of the measured generation (only
--   the given origin unless origin = '*'), the larger config_hash when one run wrote several.
--   The baseline is then read under that same config, whichever run scored it. No row when
--   the table holds no score of that generation.
-- param table VARCHAR: the score table (scores_<scorer name>)
-- param generation INTEGER: the generation measured
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- score table $table:
-- tables: samples
-- columns: config_hash, run_id
SELECT s.config_hash, s.run_id
FROM query_table($table) AS s
JOIN samples AS x ON x.sample_id = s.sample_id
WHERE x.generation = $generation
  AND ($origin = '*' OR x.origin = $origin)
ORDER BY s.run_id DESC, s.config_hash DESC
LIMIT 1
