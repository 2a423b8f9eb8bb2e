-- name: shift/length
-- description: Shift of the character-length distribution, length(text) in Unicode code
--   points, between the generation's and the baseline's samples (rows of `samples` of that
--   generation; only the given origin unless origin = '*'; NULL texts are left out).
--   ks = the two-sample Kolmogorov-Smirnov statistic D = max over x of |F_g(x) - F_b(x)|,
--   F = the empirical CDF (share of the side's lengths <= x), evaluated at every distinct
--   length of either side (where the maximum is attained); NULL when either side is empty.
--   size / baseline_size = number of lengths; p10, p50, p90 = quantiles with linear
--   interpolation (quantile_cont, numpy's default); mean = mean length.
--   No row when both sides are empty.
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- tables: samples
-- columns: baseline_size, size, ks, baseline_p10, p10, baseline_p50, p50, baseline_p90, p90, baseline_mean, mean
WITH l AS (
    SELECT generation, length(text) AS len
    FROM samples
    WHERE generation IN ($generation, $baseline)
      AND ($origin = '*' OR origin = $origin)
      AND text IS NOT NULL
),
stats AS (
    SELECT
        count(*) FILTER (WHERE generation = $baseline) AS baseline_size,
        count(*) FILTER (WHERE generation = $generation) AS size,
        quantile_cont(len, 0.1) FILTER (WHERE generation = $baseline) AS baseline_p10,
        quantile_cont(len, 0.1) FILTER (WHERE generation = $generation) AS p10,
        quantile_cont(len, 0.5) FILTER (WHERE generation = $baseline) AS baseline_p50,
        quantile_cont(len, 0.5) FILTER (WHERE generation = $generation) AS p50,
        quantile_cont(len, 0.9) FILTER (WHERE generation = $baseline) AS baseline_p90,
        quantile_cont(len, 0.9) FILTER (WHERE generation = $generation) AS p90,
        avg(len) FILTER (WHERE generation = $baseline) AS baseline_mean,
        avg(len) FILTER (WHERE generation = $generation) AS mean
    FROM l
),
counts AS (
    SELECT
        len,
        count(*) FILTER (WHERE generation = $generation) AS c_g,
        count(*) FILTER (WHERE generation = $baseline) AS c_b
    FROM l
    GROUP BY len
),
cdf AS (
    SELECT
        sum(c_g) OVER (ORDER BY len)::DOUBLE / NULLIF(stats.size, 0) AS f_g,
        sum(c_b) OVER (ORDER BY len)::DOUBLE / NULLIF(stats.baseline_size, 0) AS f_b
    FROM counts
    CROSS JOIN stats
)
SELECT
    stats.baseline_size,
    stats.size,
    (SELECT max(abs(f_g - f_b)) FROM cdf) AS ks,
    stats.baseline_p10,
    stats.p10,
    stats.baseline_p50,
    stats.p50,
    stats.baseline_p90,
    stats.p90,
    stats.baseline_mean,
    stats.mean
FROM stats
WHERE stats.baseline_size + stats.size > 0
