-- name: shift/scores/embeddings
-- description: The sentence embeddings (scores_embedding_v1.embedding) of the generation's and
--   the baseline's samples (only the given origin unless origin = '*') under one scorer config
--   (config_hash; see shift/scores/score_config), a sample counting once with its latest row (largest
--   run_id), NULL embeddings left out: one row per sample with its generation. The drift
--   metrics over them are computed in numpy by curator.shift.embedding_drift, whose docstring
--   defines them (centroid cosine distance, within-generation mean pairwise cosine similarity).
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- param config_hash VARCHAR: the embedding scorer's config (shift/scores/score_config)
-- score table scores_embedding_v1: embedding FLOAT[384]
-- tables: samples
-- columns: generation, embedding
WITH latest AS (
    SELECT x.generation, s.embedding
    FROM scores_embedding_v1 AS s
    JOIN samples AS x ON x.sample_id = s.sample_id
    WHERE s.config_hash = $config_hash
      AND x.generation IN ($generation, $baseline)
      AND ($origin = '*' OR x.origin = $origin)
    QUALIFY row_number() OVER (PARTITION BY s.sample_id ORDER BY s.run_id DESC) = 1
)
SELECT generation, embedding
FROM latest
WHERE embedding IS NOT NULL
