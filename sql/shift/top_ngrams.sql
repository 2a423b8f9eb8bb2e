-- name: shift/top_ngrams
-- description: A generation's top n-grams by count (its exact top-k list, ngram_top) for a
--   report, in rank order: freq = count / total (share of the group's n-gram occurrences) and
--   doc_share = doc_freq / documents (share of the group's documents containing it), both from
--   ngram_totals (NULL when the denominator is 0 or missing).
-- param generation INTEGER: the generation listed
-- param origin VARCHAR = '*': origin group ('*' = all origins)
-- param tokenizer VARCHAR = 'word_v1': tokenizer of the statistics
-- param n INTEGER = 2: n-gram order
-- param limit_rows INTEGER = 20: rows returned at most
-- tables: ngram_top, ngram_totals
-- columns: rank, ngram, count, doc_freq, freq, doc_share
SELECT
    t.rank,
    t.ngram,
    t.count,
    t.doc_freq,
    t.count::DOUBLE / NULLIF(tot.total, 0) AS freq,
    t.doc_freq::DOUBLE / NULLIF(tot.documents, 0) AS doc_share
FROM ngram_top AS t
LEFT JOIN ngram_totals AS tot
    ON tot.generation = t.generation
   AND tot.origin = t.origin
   AND tot.tokenizer = t.tokenizer
   AND tot.n = t.n
WHERE t.generation = $generation
  AND t.origin = $origin
  AND t.tokenizer = $tokenizer
  AND t.n = $n
ORDER BY t.rank, t.ngram
LIMIT $limit_rows
