-- name: shift/scores/perplexity
-- description: Shift of the per-document perplexity under the reference model
--   (scores_perplexity_v1.perplexity) between the generation's and the baseline's samples
--   (samples of that generation; only the given origin unless origin = '*'), read under one
--   scorer config (config_hash; see shift/scores/score_config). A sample scored more than once under
--   the config counts once, with its latest row (largest run_id); samples whose perplexity is
--   NULL, NaN or infinite are left out. size / baseline_size = number of perplexities;
--   p10, p25, p50, p75, p90 = quantiles with linear interpolation (quantile_cont, numpy's
--   default). low_band_share = the share of the generation's perplexities <= the baseline's
--   p25 (x <= baseline_p25: "coverage narrowing", ToEdit: synthetic text covers only a narrow
--   low-perplexity band, so its share inside the baseline's lowest quartile grows);
--   baseline_low_band_share = the same share of the baseline's own perplexities (0.25 up to
--   ties and interpolation). ks = the two-sample Kolmogorov-Smirnov statistic D = max over x
--   of |F_g(x) - F_b(x)| (F = empirical CDF, evaluated at every distinct perplexity of either
--   side). Generation columns NULL when the generation has no perplexity, baseline columns
--   (and ks, low_band_share) NULL when the baseline has none. No row when both sides are empty.
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin filter ('*' = all origins)
-- param config_hash VARCHAR: the perplexity scorer's config (shift/scores/score_config)
-- score table scores_perplexity_v1: perplexity DOUBLE
-- tables: samples
-- columns: baseline_size, size, ks, baseline_low_band_share, low_band_share, baseline_p10, p10, baseline_p25, p25, baseline_p50, p50, baseline_p75, p75, baseline_p90, p90
WITH latest AS (
    SELECT x.generation, s.perplexity
    FROM scores_perplexity_v1 AS s
    JOIN samples AS x ON x.sample_id = s.sample_id
    WHERE s.config_hash = $config_hash
      AND x.generation IN ($generation, $baseline)
      AND ($origin = '*' OR x.origin = $origin)
    QUALIFY row_number() OVER (PARTITION BY s.sample_id ORDER BY s.run_id DESC) = 1
),
l AS (
    SELECT generation, perplexity AS ppl
    FROM latest
    WHERE isfinite(perplexity)
),
stats AS (
    SELECT
        count(*) FILTER (WHERE generation = $baseline) AS baseline_size,
        count(*) FILTER (WHERE generation = $generation) AS size,
        quantile_cont(ppl, 0.1) FILTER (WHERE generation = $baseline) AS baseline_p10,
        quantile_cont(ppl, 0.1) FILTER (WHERE generation = $generation) AS p10,
        quantile_cont(ppl, 0.25) FILTER (WHERE generation = $baseline) AS baseline_p25,
        quantile_cont(ppl, 0.25) FILTER (WHERE generation = $generation) AS p25,
        quantile_cont(ppl, 0.5) FILTER (WHERE generation = $baseline) AS baseline_p50,
        quantile_cont(ppl, 0.5) FILTER (WHERE generation = $generation) AS p50,
        quantile_cont(ppl, 0.75) FILTER (WHERE generation = $baseline) AS baseline_p75,
        quantile_cont(ppl, 0.75) FILTER (WHERE generation = $generation) AS p75,
        quantile_cont(ppl, 0.9) FILTER (WHERE generation = $baseline) AS baseline_p90,
        quantile_cont(ppl, 0.9) FILTER (WHERE generation = $generation) AS p90
    FROM l
),
band AS (
    SELECT
        count(*) FILTER (WHERE l.generation = $baseline AND l.ppl <= stats.baseline_p25)::DOUBLE
          / NULLIF(stats.baseline_size, 0) AS baseline_low_band_share,
        count(*) FILTER (WHERE l.generation = $generation AND l.ppl <= stats.baseline_p25)::DOUBLE
          / NULLIF(stats.size, 0) AS low_band_share
    FROM l
    CROSS JOIN stats
    GROUP BY stats.baseline_size, stats.size
),
counts AS (
    SELECT
        ppl,
        count(*) FILTER (WHERE generation = $generation) AS c_g,
        count(*) FILTER (WHERE generation = $baseline) AS c_b
    FROM l
    GROUP BY ppl
),
cdf AS (
    SELECT
        sum(c_g) OVER (ORDER BY ppl)::DOUBLE / NULLIF(stats.size, 0) AS f_g,
        sum(c_b) OVER (ORDER BY ppl)::DOUBLE / NULLIF(stats.baseline_size, 0) AS f_b
    FROM counts
    CROSS JOIN stats
)
SELECT
    stats.baseline_size,
    stats.size,
    (SELECT max(abs(f_g - f_b)) FROM cdf) AS ks,
    (SELECT baseline_low_band_share FROM band) AS baseline_low_band_share,
    (SELECT CASE WHEN stats.baseline_size > 0 THEN low_band_share END FROM band) AS low_band_share,
    stats.baseline_p10,
    stats.p10,
    stats.baseline_p25,
    stats.p25,
    stats.baseline_p50,
    stats.p50,
    stats.baseline_p75,
    stats.p75,
    stats.baseline_p90,
    stats.p90
FROM stats
WHERE stats.baseline_size + stats.size > 0
