-- name: shift/concentration
-- description: Concentration of the hashed n-gram histogram of a generation and of the
--   baseline, one row per n present in either. Over the normalised histogram
--   p_b = count_b / sum(count) (ngram_buckets, non-zero buckets only):
--   entropy = -sum_b p_b * log2(p_b) in bits (at most log2(B));
--   effective_buckets = 2^entropy (the number of equally filled buckets with that entropy);
--   top_bucket_mass = sum of p_b over the k = ceil(B / 100) largest buckets (the top 1% of the
--   B buckets, B = ngram_totals.buckets; ties at the cut do not change the sum).
--   All NULL for a group without bucket mass. Synthetic text concentrates mass in few buckets:
--   entropy and effective_buckets fall, top_bucket_mass rises.
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin group ('*' = all origins)
-- param tokenizer VARCHAR = 'word_v1': tokenizer of the statistics
-- tables: ngram_buckets, ngram_totals
-- columns: n, baseline_entropy, entropy, baseline_effective_buckets, effective_buckets, baseline_top_bucket_mass, top_bucket_mass
WITH totals AS (
    SELECT generation, n, buckets
    FROM ngram_totals
    WHERE generation IN ($generation, $baseline)
      AND origin = $origin
      AND tokenizer = $tokenizer
),
h AS (
    SELECT
        b.generation,
        b.n,
        b.count::DOUBLE / sum(b.count) OVER (PARTITION BY b.generation, b.n) AS p,
        row_number() OVER (PARTITION BY b.generation, b.n ORDER BY b.count DESC, b.bucket) AS rnk,
        t.buckets
    FROM ngram_buckets AS b
    JOIN totals AS t ON t.generation = b.generation AND t.n = b.n
    WHERE b.origin = $origin
      AND b.tokenizer = $tokenizer
      AND b.count > 0
),
m AS (
    SELECT
        generation,
        n,
        -sum(p * log2(p)) AS entropy,
        sum(p) FILTER (WHERE rnk <= ceil(buckets / 100.0)) AS top_bucket_mass
    FROM h
    GROUP BY generation, n
),
ns AS (SELECT DISTINCT n FROM totals)
SELECT
    ns.n,
    b.entropy AS baseline_entropy,
    g.entropy AS entropy,
    pow(2, b.entropy) AS baseline_effective_buckets,
    pow(2, g.entropy) AS effective_buckets,
    b.top_bucket_mass AS baseline_top_bucket_mass,
    g.top_bucket_mass AS top_bucket_mass
FROM ns
LEFT JOIN m AS b ON b.n = ns.n AND b.generation = $baseline
LEFT JOIN m AS g ON g.n = ns.n AND g.generation = $generation
ORDER BY ns.n
