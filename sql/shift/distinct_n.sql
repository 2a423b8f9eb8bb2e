-- name: shift/distinct_n
-- description: Corpus-level distinct-n of a generation and of the baseline, one row per n
--   present in either: distinct_n = distinct / total, where `distinct` is the number of
--   different n-grams and `total` the number of n-gram occurrences (ngram_totals) of the
--   (generation, origin, tokenizer, n) group. NULL when the group is absent or total = 0.
--   Collapse lowers it; note that it also falls as a corpus grows (Heaps' law), so compare
--   generations of similar size.
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin group ('*' = all origins)
-- param tokenizer VARCHAR = 'word_v1': tokenizer of the statistics
-- tables: ngram_totals
-- columns: n, baseline_value, value
WITH t AS (
    SELECT generation, n, "distinct"::DOUBLE / NULLIF(total, 0) AS distinct_n
    FROM ngram_totals
    WHERE generation IN ($generation, $baseline)
      AND origin = $origin
      AND tokenizer = $tokenizer
),
ns AS (SELECT DISTINCT n FROM t)
SELECT
    ns.n,
    b.distinct_n AS baseline_value,
    g.distinct_n AS value
FROM ns
LEFT JOIN t AS b ON b.n = ns.n AND b.generation = $baseline
LEFT JOIN t AS g ON g.n = ns.n AND g.generation = $generation
ORDER BY ns.n
