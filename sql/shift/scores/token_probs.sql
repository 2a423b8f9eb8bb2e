-- name: shift/scores/token_probs
-- description: The ToEdit token-probability histogram of the generation and of the baseline:
--   over every token probability p = P(x_i | x_<i) stored by the perplexity scorer
--   (scores_perplexity_v1.token_probs, scored with keep_token_probs; read as DOUBLE) of the
--   side's samples (only the given origin unless origin = '*'), under one scorer config
--   (config_hash; see shift/scores/token_probs_config), a sample counting once with its latest row
--   (largest run_id); NULL, NaN and out-of-range (outside [0, 1]) probabilities are left out.
--   One row per measure: bin_0 .. bin_9 = the share of tokens with i/10 <= p < (i+1)/10 (the
--   last bin closed: 0.9 <= p <= 1), above_0_99 = the share with p > 0.99 (synthetic text is
--   over-confident: its mass piles up there). share = a / t summed over the side's documents
--   (a_d = the document's tokens in the measure, t_d = its tokens, T = sum t_d = tokens);
--   se = sqrt(sum_d (a_d - share * t_d)^2) / T, the standard error of that ratio with
--   documents as clusters (delta method: tokens of one document are not independent).
--   Generation columns NULL when the generation has no token probabilities, baseline columns
--   when the baseline has none; no rows when neither side has any.
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- param config_hash VARCHAR: the perplexity scorer's config (shift/scores/token_probs_config)
-- score table scores_perplexity_v1: token_probs FLOAT[]
-- tables: samples
-- columns: measure, baseline_tokens, tokens, baseline_share, share, baseline_se, se
WITH latest AS (
    SELECT x.generation, s.token_probs
    FROM scores_perplexity_v1 AS s
    JOIN samples AS x ON x.sample_id = s.sample_id
    WHERE s.config_hash = $config_hash
      AND x.generation IN ($generation, $baseline)
      AND ($origin = '*' OR x.origin = $origin)
    QUALIFY row_number() OVER (PARTITION BY s.sample_id ORDER BY s.run_id DESC) = 1
),
docs AS (
    -- list functions count per document without unnesting every token into a row
    SELECT generation, list_filter(list_transform(token_probs, lambda p: p::DOUBLE),
                                   lambda p: p >= 0 AND p <= 1) AS probs
    FROM latest
    WHERE token_probs IS NOT NULL
),
per_doc AS (
    SELECT
        generation,
        len(probs) AS t,
        len(list_filter(probs, lambda p: p >= 0.0 AND p < 0.1)) AS bin_0,
        len(list_filter(probs, lambda p: p >= 0.1 AND p < 0.2)) AS bin_1,
        len(list_filter(probs, lambda p: p >= 0.2 AND p < 0.3)) AS bin_2,
        len(list_filter(probs, lambda p: p >= 0.3 AND p < 0.4)) AS bin_3,
        len(list_filter(probs, lambda p: p >= 0.4 AND p < 0.5)) AS bin_4,
        len(list_filter(probs, lambda p: p >= 0.5 AND p < 0.6)) AS bin_5,
        len(list_filter(probs, lambda p: p >= 0.6 AND p < 0.7)) AS bin_6,
        len(list_filter(probs, lambda p: p >= 0.7 AND p < 0.8)) AS bin_7,
        len(list_filter(probs, lambda p: p >= 0.8 AND p < 0.9)) AS bin_8,
        len(list_filter(probs, lambda p: p >= 0.9 AND p <= 1.0)) AS bin_9,
        len(list_filter(probs, lambda p: p > 0.99)) AS above_0_99
    FROM docs
    WHERE len(probs) > 0
),
cells AS (
    UNPIVOT per_doc
    ON bin_0, bin_1, bin_2, bin_3, bin_4, bin_5, bin_6, bin_7, bin_8, bin_9, above_0_99
    INTO NAME measure VALUE a
),
side AS (
    SELECT
        generation,
        measure,
        sum(t) AS tokens,
        sum(a)::DOUBLE / sum(t) AS share,
        sum(a::DOUBLE * a) AS saa,
        sum(a::DOUBLE * t) AS sat,
        sum(t::DOUBLE * t) AS stt
    FROM cells
    GROUP BY generation, measure
),
measures AS (
    SELECT 'bin_' || i AS measure, i AS ord FROM range(10) AS r(i)
    UNION ALL
    SELECT 'above_0_99', 10
)
SELECT
    m.measure,
    b.tokens AS baseline_tokens,
    g.tokens AS tokens,
    b.share AS baseline_share,
    g.share AS share,
    sqrt(greatest(b.saa - 2 * b.share * b.sat + b.share * b.share * b.stt, 0)) / b.tokens AS baseline_se,
    sqrt(greatest(g.saa - 2 * g.share * g.sat + g.share * g.share * g.stt, 0)) / g.tokens AS se
FROM measures AS m
LEFT JOIN side AS b ON b.measure = m.measure AND b.generation = $baseline
LEFT JOIN side AS g ON g.measure = m.measure AND g.generation = $generation
WHERE EXISTS (SELECT 1 FROM per_doc)
ORDER BY m.ord
