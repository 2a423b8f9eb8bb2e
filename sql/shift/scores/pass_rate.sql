-- name: shift/scores/pass_rate
-- description: Verifier pass rate of the generation and of the baseline, from one verifier's
--   score table (a scores_* table with a BOOLEAN column correct, NULL when the verifier could
--   not judge the sample) under one scorer config (config_hash; see shift/scores/score_config), a
--   sample counting once with its latest row (largest run_id); samples of that generation,
--   only the given origin unless origin = '*'. scored = samples with a row; judged = those
--   whose correct is not NULL; passed = those whose correct is true; pass_rate = passed /
--   judged (NULL when judged = 0). No row when neither side has a row.
-- param table VARCHAR: the verifier's score table (scores_<scorer name>)
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- param config_hash VARCHAR: the verifier's config (shift/scores/score_config)
-- score table $table: correct BOOLEAN
-- tables: samples
-- columns: baseline_scored, scored, baseline_judged, judged, baseline_passed, passed, baseline_pass_rate, pass_rate
WITH v AS (
    SELECT x.generation, s.correct
    FROM query_table($table) AS s
    JOIN samples AS x ON x.sample_id = s.sample_id
    WHERE s.config_hash = $config_hash
      AND x.generation IN ($generation, $baseline)
      AND ($origin = '*' OR x.origin = $origin)
    QUALIFY row_number() OVER (PARTITION BY s.sample_id ORDER BY s.run_id DESC) = 1
),
c AS (
    SELECT
        count(*) FILTER (WHERE generation = $baseline) AS baseline_scored,
        count(*) FILTER (WHERE generation = $generation) AS scored,
        count(correct) FILTER (WHERE generation = $baseline) AS baseline_judged,
        count(correct) FILTER (WHERE generation = $generation) AS judged,
        count(*) FILTER (WHERE generation = $baseline AND correct) AS baseline_passed,
        count(*) FILTER (WHERE generation = $generation AND correct) AS passed
    FROM v
)
SELECT
    baseline_scored,
    scored,
    baseline_judged,
    judged,
    baseline_passed,
    passed,
    baseline_passed::DOUBLE / NULLIF(baseline_judged, 0) AS baseline_pass_rate,
    passed::DOUBLE / NULLIF(judged, 0) AS pass_rate
FROM c
WHERE baseline_scored + scored > 0
