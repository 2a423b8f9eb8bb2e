-- name: shift/scores/verifiers
-- description: The verifier score tables visible to the connection: every table or view named
--   scores_<scorer> that has a BOOLEAN column named correct (the verifiers' verdict), with the
--   scorer's name (the table name without 'scores_'), in name order.
-- tables:
-- columns: table_name, scorer
SELECT DISTINCT table_name, substr(table_name, 8) AS scorer
FROM information_schema.columns
WHERE starts_with(table_name, 'scores_')
  AND column_name = 'correct'
  AND data_type = 'BOOLEAN'
ORDER BY table_name
