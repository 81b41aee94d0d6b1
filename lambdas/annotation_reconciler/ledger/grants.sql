-- The least privilege the reconciler's database role needs on a portal database.
-- Run as the portal tables' owner; replace annotation_reconciler with the role's name.
-- (The importer, `annotation-reconciler ingest`, writes portal rows and runs with the ingestion role.)
GRANT USAGE, CREATE ON SCHEMA public TO annotation_reconciler;  -- CREATE: it owns its own tables
GRANT SELECT ON run TO annotation_reconciler;  -- a run's dataset: shards and the mass-deletion guard
GRANT SELECT, DELETE ON annotation, annotation_shape, annotation_file, annotation_author, annotation_method_link
    TO annotation_reconciler;
-- Then, once, as the owner of annotation (the role cannot index a table it does not own):
-- CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_annotation_s3_metadata_path ON annotation (s3_metadata_path);
