-- name: select/audit
-- description: The verifier audit (Feng et al., "Beyond Model Collapse"): how well a selection
--   agrees with an oracle. Audit samples: the non-human samples of the generation (every
--   generation when generation = -1) that the oracle judged (the oracle scorer's latest row
--   of oracle_config, metric correct, is not NULL). A sample is kept when it is a row of
--   selection (when selection <> ''), else when the verifier's metric (its latest row of
--   verifier_config; booleans read 1/0) is >= threshold; a sample the verifier did not judge
--   is not kept. keep_rate_correct = kept_correct / oracle_correct; keep_rate_incorrect =
--   kept_incorrect / oracle_incorrect; precision = kept_correct / kept (the oracle pass rate
--   of the selected set); base_rate = oracle_correct / audit_samples (precision above it:
--   the selection enriches correct samples). NULL on a zero denominator; no row when there
--   is no audit sample. Reads the long view scores (every score table) besides the tables.
-- param oracle VARCHAR: the oracle verifier scorer (e.g. gold_answer_v1)
-- param oracle_config VARCHAR = '': the oracle's config_hash ('' = each sample's latest row of any config)
-- param verifier VARCHAR = '': the verifier scorer audited (when selection = '')
-- param verifier_config VARCHAR = '': the verifier's config_hash ('' = latest row of any config)
-- param metric VARCHAR = 'correct': the verifier's score column compared with threshold
-- param threshold DOUBLE = 0.5: kept when metric >= threshold (0.5 on a boolean: kept when true)
-- param selection VARCHAR = '': audit this selection's rows instead of a verifier ('' = none)
-- param generation INTEGER = -1: the generation audited (-1 = all)
-- tables: samples, selections
-- columns: audit_samples, oracle_correct, oracle_incorrect, kept, kept_correct, kept_incorrect, keep_rate_correct, keep_rate_incorrect, precision, base_rate
WITH pool AS (
    SELECT sample_id FROM samples
    WHERE origin <> 'human' AND ($generation = -1 OR generation = $generation)
),
oracle AS (
    SELECT sample_id, value > 0.5 AS correct
    FROM scores
    WHERE scorer = $oracle AND metric = 'correct' AND ($oracle_config = '' OR config_hash = $oracle_config)
      AND sample_id IN (SELECT sample_id FROM pool)
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY run_id DESC, config_hash DESC) = 1
),
verdict AS (
    SELECT sample_id, value >= $threshold AS kept
    FROM scores
    WHERE $selection = '' AND scorer = $verifier AND metric = $metric
      AND ($verifier_config = '' OR config_hash = $verifier_config)
      AND sample_id IN (SELECT sample_id FROM pool)
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY run_id DESC, config_hash DESC) = 1
),
chosen AS (
    SELECT DISTINCT sample_id, true AS kept FROM selections WHERE $selection <> '' AND selection = $selection
),
a AS (
    SELECT o.correct, coalesce(CASE WHEN $selection = '' THEN v.kept ELSE c.kept END, false) AS kept
    FROM oracle AS o
    LEFT JOIN verdict AS v USING (sample_id)
    LEFT JOIN chosen AS c USING (sample_id)
    WHERE o.correct IS NOT NULL
),
n AS (
    SELECT
        count(*) AS audit_samples,
        count(*) FILTER (WHERE correct) AS oracle_correct,
        count(*) FILTER (WHERE NOT correct) AS oracle_incorrect,
        count(*) FILTER (WHERE kept) AS kept,
        count(*) FILTER (WHERE kept AND correct) AS kept_correct,
        count(*) FILTER (WHERE kept AND NOT correct) AS kept_incorrect
    FROM a
)
SELECT
    audit_samples, oracle_correct, oracle_incorrect, kept, kept_correct, kept_incorrect,
    kept_correct::DOUBLE / NULLIF(oracle_correct, 0) AS keep_rate_correct,
    kept_incorrect::DOUBLE / NULLIF(oracle_incorrect, 0) AS keep_rate_incorrect,
    kept_correct::DOUBLE / NULLIF(kept, 0) AS precision,
    oracle_correct::DOUBLE / NULLIF(audit_samples, 0) AS base_rate
FROM n
WHERE audit_samples > 0
