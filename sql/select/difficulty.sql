-- name: select/difficulty
-- description: Per-prompt difficulty for the boosting label budget (Amin et al., "Escaping
--   Collapse"): for each prompt_id of the generation's non-human samples, k = its samples,
--   passed = those whose verifier verdict (the verifier's latest row of verifier_config,
--   metric correct) is true (a sample without a verdict counts as not passed), pass_rate =
--   passed / k, difficulty = 1 - pass_rate, unsolved = (passed = 0), labeled = some sample of
--   origin labeled (any generation) has this prompt_id or names it as parent_id. Ordered
--   hardest first: unsolved, then difficulty descending, then prompt_id.
-- param generation INTEGER: the generation whose samples are counted
-- param verifier VARCHAR: the verifier scorer (e.g. gsm8k_answer_v1)
-- param verifier_config VARCHAR = '': its config_hash ('' = each sample's latest row of any config)
-- tables: samples
-- columns: prompt_id, prompt, k, passed, pass_rate, difficulty, unsolved, labeled
WITH s AS (
    SELECT sample_id, prompt_id, prompt FROM samples
    WHERE generation = $generation AND origin <> 'human' AND prompt_id IS NOT NULL
),
v AS (
    SELECT sample_id, value > 0.5 AS correct
    FROM scores
    WHERE scorer = $verifier AND metric = 'correct' AND ($verifier_config = '' OR config_hash = $verifier_config)
      AND sample_id IN (SELECT sample_id FROM s)
    QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY run_id DESC, config_hash DESC) = 1
),
labels AS (
    SELECT DISTINCT coalesce(prompt_id, parent_id) AS prompt_id FROM samples WHERE origin = 'labeled'
    UNION
    SELECT DISTINCT parent_id FROM samples WHERE origin = 'labeled' AND parent_id IS NOT NULL
),
p AS (
    SELECT s.prompt_id, min(s.prompt) AS prompt, count(*) AS k, count(*) FILTER (WHERE v.correct) AS passed
    FROM s LEFT JOIN v USING (sample_id)
    GROUP BY s.prompt_id
)
SELECT
    p.prompt_id, p.prompt, p.k, p.passed,
    p.passed::DOUBLE / p.k AS pass_rate,
    1.0 - p.passed::DOUBLE / p.k AS difficulty,
    p.passed = 0 AS unsolved,
    p.prompt_id IN (SELECT prompt_id FROM labels WHERE prompt_id IS NOT NULL) AS labeled
FROM p
ORDER BY unsolved DESC, difficulty DESC, p.prompt_id
