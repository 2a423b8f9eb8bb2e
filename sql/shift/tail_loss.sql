-- name: shift/tail_loss
-- description: Tail loss over the consistent hash sample of n-gram space (ngram_sample), one
--   row per n present in either group. Both samples are first cut to the subset they share,
--   hash * max(S_g, S_b) < 2^64 (S = ngram_totals.sample_rate), so differing sample rates
--   stay comparable. With B = the baseline's sampled distinct n-grams (count > 0):
--   tail_loss = |{x in B : x not in the generation's sample}| / |B|;
--   tail_loss_rare = the same over B_rare = {x in B : baseline count(x) = 1};
--   expected_tail_loss = mean over x in B of exp(-count_b(x) * T_g / T_b), the share a random
--   draw of the generation's size from the baseline's distribution would lose (Poisson model;
--   T_g, T_b = ngram_totals.total of generation and baseline for that n);
--   expected_tail_loss_rare = the same mean over B_rare (= exp(-T_g / T_b));
--   baseline_sampled = |B|.
--   The Poisson expectation treats baseline counts as true rates, so it underestimates what an
--   independent sample of the same source loses (a random half of GSM8K's answers loses 91% of
--   the other half's sampled 4-grams where it predicts 35%). The split expectation estimates
--   that loss from the baseline alone by thinning its documents: each document goes to part G
--   with probability g = T_g / (T_b + T_g), else to part A (a = 1 - g), so the two parts are
--   independent samples of the baseline's source with the generation/baseline size ratio.
--   With d = the n-gram's document count, least(doc_freq, count) (at least 1):
--   split_tail_loss = sum_B a^d / sum_B (1 - g^d), the expected number of A's n-grams absent
--   from G over the expected number of A's n-grams;
--   split_tail_loss_rare = |B_rare| / sum over x in B with count = d of d * g^(d - 1), the same
--   for A's n-grams met once (n-grams repeated inside one document are left out of the
--   denominator). Documents rather than occurrences are thinned because n-grams come in
--   clumps (GSM8K repeats every number in its calculator annotations). The parts are smaller
--   than the real corpora, so the split expectation errs high (the safe side for an alarm).
--   Loss columns NULL when |B| (or |B_rare|) = 0 or the generation has no n-grams (total NULL
--   or 0).
-- param generation INTEGER: the generation measured
-- param baseline INTEGER = 0: the reference generation
-- param origin VARCHAR = '*': origin group ('*' = all origins)
-- param tokenizer VARCHAR = 'word_v1': tokenizer of the statistics
-- tables: ngram_sample, ngram_totals
-- columns: n, tail_loss, expected_tail_loss, tail_loss_rare, expected_tail_loss_rare, baseline_sampled, split_tail_loss, split_tail_loss_rare
WITH totals AS (
    SELECT generation, n, total, sample_rate
    FROM ngram_totals
    WHERE generation IN ($generation, $baseline)
      AND origin = $origin
      AND tokenizer = $tokenizer
),
pair AS (
    SELECT
        ns.n,
        b.total AS t_b,
        g.total AS t_g,
        greatest(coalesce(b.sample_rate, 1), coalesce(g.sample_rate, 1), 1) AS s
    FROM (SELECT DISTINCT n FROM totals) AS ns
    LEFT JOIN totals AS b ON b.n = ns.n AND b.generation = $baseline
    LEFT JOIN totals AS g ON g.n = ns.n AND g.generation = $generation
),
bs AS (
    SELECT x.n, x.hash, x.count, greatest(least(x.doc_freq, x.count), 1) AS doc_freq
    FROM ngram_sample AS x
    JOIN pair AS p ON p.n = x.n
    WHERE x.generation = $baseline
      AND x.origin = $origin
      AND x.tokenizer = $tokenizer
      AND x.count > 0
      AND x.hash::HUGEINT * p.s < 18446744073709551616::HUGEINT
),
gs AS (
    SELECT DISTINCT n, hash
    FROM ngram_sample
    WHERE generation = $generation
      AND origin = $origin
      AND tokenizer = $tokenizer
      AND count > 0
),
m AS (
    SELECT
        bs.n,
        count(*) AS sampled,
        avg(CASE WHEN gs.hash IS NULL THEN 1.0 ELSE 0.0 END) AS lost,
        avg(CASE WHEN gs.hash IS NULL THEN 1.0 ELSE 0.0 END) FILTER (WHERE bs.count = 1) AS lost_rare,
        avg(exp(-bs.count * p.t_g::DOUBLE / NULLIF(p.t_b, 0))) AS expected,
        avg(exp(-bs.count * p.t_g::DOUBLE / NULLIF(p.t_b, 0))) FILTER (WHERE bs.count = 1) AS expected_rare,
        sum(pow(p.t_b::DOUBLE / (p.t_b + p.t_g), bs.doc_freq))
          / sum(1 - pow(p.t_g::DOUBLE / (p.t_b + p.t_g), bs.doc_freq)) AS split,
        count(*) FILTER (WHERE bs.count = 1)
          / sum(bs.doc_freq * pow(p.t_g::DOUBLE / (p.t_b + p.t_g), bs.doc_freq - 1))
              FILTER (WHERE bs.count = bs.doc_freq) AS split_rare
    FROM bs
    JOIN pair AS p ON p.n = bs.n
    LEFT JOIN gs ON gs.n = bs.n AND gs.hash = bs.hash
    GROUP BY bs.n
)
SELECT
    p.n,
    CASE WHEN p.t_g > 0 THEN m.lost END AS tail_loss,
    CASE WHEN p.t_g > 0 THEN m.expected END AS expected_tail_loss,
    CASE WHEN p.t_g > 0 THEN m.lost_rare END AS tail_loss_rare,
    CASE WHEN p.t_g > 0 THEN m.expected_rare END AS expected_tail_loss_rare,
    coalesce(m.sampled, 0) AS baseline_sampled,
    CASE WHEN p.t_g > 0 THEN m.split END AS split_tail_loss,
    CASE WHEN p.t_g > 0 AND m.lost_rare IS NOT NULL THEN m.split_rare END AS split_tail_loss_rare
FROM pair AS p
LEFT JOIN m ON m.n = p.n
ORDER BY p.n
