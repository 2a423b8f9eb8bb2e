-- name: shift/js_divergence
-- description: Jensen-Shannon divergence (base 2, in [0, 1]) between the normalised hashed
--   n-gram histograms of a generation (P) and of the baseline (Q), one row per n present in
--   either: JS = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2, KL(P || M) =
--   sum_b p_b * log2(p_b / m_b), summed over the union of the two groups' buckets (a missing
--   bucket has p_b = 0 and adds nothing to its own KL term); clamped to [0, 1] against rounding.
--   noise_floor = phi * (K - 1) * (1/T_g + 1/T_b) / (8 ln 2): the JS that two independent
--   samples of these sizes from one distribution show by chance, from the second-order
--   expansion JS ~ sum_b (p_b - q_b)^2 / (8 m_b ln 2) with multinomial variances; K = buckets
--   non-zero in either histogram, T = a histogram's total mass. dispersion = phi = the
--   design effect of sampling documents rather than n-grams, estimated on the baseline's
--   hash sample as sum(c^2 / d) / sum(c) (c = count, d = doc_freq: an n-gram met c times in d
--   documents moves in clumps of c / d; 1 when the baseline has no sample). Small corpora
--   have a large floor (a 40k-token half of GSM8K's test set shows JS_2 = 0.14 against the
--   other half from noise alone), so read JS against it.
--   Both NULL when either histogram is empty or the two bucket counts B differ (incomparable).
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin group ('*' = all origins)
-- param tokenizer VARCHAR = 'word_v1': tokenizer of the statistics
-- tables: ngram_buckets, ngram_sample, ngram_totals
-- columns: n, js_divergence, noise_floor, dispersion
WITH totals AS (
    SELECT generation, n, buckets
    FROM ngram_totals
    WHERE generation IN ($generation, $baseline)
      AND origin = $origin
      AND tokenizer = $tokenizer
),
h AS (
    SELECT
        generation,
        n,
        bucket,
        count::DOUBLE AS c,
        sum(count) OVER (PARTITION BY generation, n)::DOUBLE AS mass
    FROM ngram_buckets
    WHERE generation IN ($generation, $baseline)
      AND origin = $origin
      AND tokenizer = $tokenizer
      AND count > 0
),
g AS (SELECT n, bucket, c / mass AS p, mass FROM h WHERE generation = $generation),
b AS (SELECT n, bucket, c / mass AS q, mass FROM h WHERE generation = $baseline),
pairs AS (
    SELECT
        coalesce(g.n, b.n) AS n,
        coalesce(g.p, 0) AS p,
        coalesce(b.q, 0) AS q
    FROM g
    FULL OUTER JOIN b ON g.n = b.n AND g.bucket = b.bucket
),
js AS (
    SELECT
        n,
        0.5 * sum(CASE WHEN p > 0 THEN p * log2(2 * p / (p + q)) ELSE 0 END)
      + 0.5 * sum(CASE WHEN q > 0 THEN q * log2(2 * q / (p + q)) ELSE 0 END) AS js,
        count(*) AS k
    FROM pairs
    GROUP BY n
),
mass AS (
    SELECT
        n,
        max(mass) FILTER (WHERE generation = $generation) AS t_g,
        max(mass) FILTER (WHERE generation = $baseline) AS t_b
    FROM h
    GROUP BY n
),
dispersion AS (
    SELECT n, sum(count::DOUBLE * count / greatest(least(doc_freq, count), 1)) / sum(count) AS phi
    FROM ngram_sample
    WHERE generation = $baseline
      AND origin = $origin
      AND tokenizer = $tokenizer
      AND count > 0
    GROUP BY n
),
ns AS (SELECT DISTINCT n FROM totals)
SELECT
    ns.n,
    CASE WHEN ok.comparable AND mass.t_g > 0 AND mass.t_b > 0
         THEN greatest(0.0, least(1.0, js.js)) END AS js_divergence,
    CASE WHEN ok.comparable AND mass.t_g > 0 AND mass.t_b > 0
         THEN coalesce(d.phi, 1.0) * (js.k - 1) * (1.0 / mass.t_g + 1.0 / mass.t_b) / (8 * ln(2))
    END AS noise_floor,
    CASE WHEN ok.comparable AND mass.t_g > 0 AND mass.t_b > 0 THEN coalesce(d.phi, 1.0) END AS dispersion
FROM ns
LEFT JOIN dispersion AS d ON d.n = ns.n
LEFT JOIN js ON js.n = ns.n
LEFT JOIN mass ON mass.n = ns.n
LEFT JOIN (
    SELECT
        n,
        count(DISTINCT buckets) = 1
          AND count(*) FILTER (WHERE generation = $generation) > 0
          AND count(*) FILTER (WHERE generation = $baseline) > 0 AS comparable
    FROM totals
    GROUP BY n
) AS ok ON ok.n = ns.n
ORDER BY ns.n
