-- name: shift/overrepresented
-- description: The generation's top n-grams (its exact top-k list, ngram_top) with their
--   frequency ratio against the baseline, highest ratio first (then count, then rank).
--   gen_freq = count / T_g and baseline_freq = baseline_count / T_b (T = ngram_totals.total).
--   ratio = gen_freq / baseline_freq, where the baseline count (matched on hash) comes from the
--   baseline's top-k list when the n-gram is in it (ratio_is_lower_bound = false). When it is
--   not, and the baseline's list holds all its distinct n-grams, the count is 0: baseline_count
--   = 0, ratio = +Infinity, ratio_is_lower_bound = false. Otherwise the count is only known to be
--   <= c_min, the smallest count in the baseline's list: baseline_count and baseline_freq are
--   NULL, ratio = gen_freq / (c_min / T_b) and ratio_is_lower_bound = true. ratio and the flag
--   are NULL when the baseline has no n-grams (or no top-k list) to compare with.
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin group ('*' = all origins)
-- param tokenizer VARCHAR = 'word_v1': tokenizer of the statistics
-- param n INTEGER = 2: n-gram order
-- param limit_rows INTEGER = 20: rows returned at most
-- tables: ngram_top, ngram_totals
-- columns: rank, ngram, count, doc_freq, gen_freq, baseline_count, baseline_freq, ratio, ratio_is_lower_bound
WITH tg AS (
    SELECT total
    FROM ngram_totals
    WHERE generation = $generation AND origin = $origin AND tokenizer = $tokenizer AND n = $n
),
tb AS (
    SELECT total, "distinct"
    FROM ngram_totals
    WHERE generation = $baseline AND origin = $origin AND tokenizer = $tokenizer AND n = $n
),
bt AS (
    SELECT hash, count
    FROM ngram_top
    WHERE generation = $baseline AND origin = $origin AND tokenizer = $tokenizer AND n = $n
),
cut AS (SELECT min(count) AS c_min, count(*) AS listed FROM bt),
ctx AS (
    SELECT
        (SELECT max(total) FROM tg) AS t_g,
        (SELECT max(total) FROM tb) AS t_b,
        (SELECT max("distinct") FROM tb) <= cut.listed AS exhaustive,
        cut.c_min
    FROM cut
),
rows AS (
    SELECT
        gt.rank,
        gt.ngram,
        gt.count,
        gt.doc_freq,
        gt.count::DOUBLE / NULLIF(ctx.t_g, 0) AS gen_freq,
        CASE
            WHEN NOT coalesce(ctx.t_b > 0, FALSE) THEN NULL
            WHEN bt.count IS NOT NULL THEN bt.count
            WHEN ctx.exhaustive THEN 0
        END AS baseline_count,
        ctx.t_b,
        ctx.c_min,
        ctx.exhaustive
    FROM ngram_top AS gt
    CROSS JOIN ctx
    LEFT JOIN bt ON bt.hash = gt.hash
    WHERE gt.generation = $generation
      AND gt.origin = $origin
      AND gt.tokenizer = $tokenizer
      AND gt.n = $n
)
SELECT
    rank,
    ngram,
    count,
    doc_freq,
    gen_freq,
    baseline_count,
    baseline_count::DOUBLE / t_b AS baseline_freq,
    CASE
        WHEN NOT coalesce(t_b > 0, FALSE) THEN NULL
        WHEN baseline_count > 0 THEN gen_freq / (baseline_count::DOUBLE / t_b)
        WHEN baseline_count = 0 THEN 'Infinity'::DOUBLE
        WHEN c_min > 0 THEN gen_freq / (c_min::DOUBLE / t_b)
    END AS ratio,
    CASE
        WHEN NOT coalesce(t_b > 0, FALSE) THEN NULL
        WHEN baseline_count IS NOT NULL THEN FALSE
        WHEN c_min > 0 THEN TRUE
    END AS ratio_is_lower_bound
FROM rows
ORDER BY ratio DESC NULLS LAST, count DESC, rank
LIMIT $limit_rows
