-- The subset of the CryoET Data Portal's apiv2 schema that annotation-reconciler touches,
-- written as plain DDL the way the portal's own migrations leave it: integer keys, foreign
-- keys WITHOUT "ON DELETE CASCADE", enums stored as VARCHAR, and a few columns (and a table)
-- the reconciler never maps, to prove that extra columns do not break it.
-- Used by the tests, the demo and the benchmarks to stand in for a portal database.

CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);

CREATE TABLE IF NOT EXISTS deposition (
    id SERIAL PRIMARY KEY,
    title VARCHAR NOT NULL,
    description VARCHAR,
    deposition_date TIMESTAMP WITH TIME ZONE,
    release_date TIMESTAMP WITH TIME ZONE,
    last_modified_date TIMESTAMP WITH TIME ZONE,
    deposition_publications VARCHAR,
    key_photo_url VARCHAR
);

CREATE TABLE IF NOT EXISTS dataset (
    id SERIAL PRIMARY KEY,
    deposition_id INTEGER REFERENCES deposition (id),
    title VARCHAR NOT NULL,
    description VARCHAR,
    organism_name VARCHAR,
    organism_taxid INTEGER,
    s3_prefix VARCHAR NOT NULL,
    https_prefix VARCHAR NOT NULL,
    deposition_date TIMESTAMP WITH TIME ZONE,
    release_date TIMESTAMP WITH TIME ZONE,
    last_modified_date TIMESTAMP WITH TIME ZONE
);

CREATE TABLE IF NOT EXISTS run (
    id SERIAL PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES dataset (id),
    name VARCHAR NOT NULL,
    s3_prefix VARCHAR NOT NULL,
    https_prefix VARCHAR NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_run_dataset_id ON run (dataset_id);

CREATE TABLE IF NOT EXISTS tomogram_voxel_spacing (
    id SERIAL PRIMARY KEY,
    run_id INTEGER REFERENCES run (id),
    voxel_spacing DOUBLE PRECISION NOT NULL,
    s3_prefix VARCHAR NOT NULL,
    https_prefix VARCHAR NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_tomogram_voxel_spacing_run_id ON tomogram_voxel_spacing (run_id);

CREATE TABLE IF NOT EXISTS annotation (
    id SERIAL PRIMARY KEY,
    run_id INTEGER REFERENCES run (id),
    deposition_id INTEGER REFERENCES deposition (id),
    tomogram_voxel_spacing_id INTEGER REFERENCES tomogram_voxel_spacing (id),
    s3_metadata_path VARCHAR NOT NULL,
    https_metadata_path VARCHAR,
    annotation_ingest_id VARCHAR,
    annotation_publication VARCHAR,
    annotation_method VARCHAR,
    method_type VARCHAR(9),
    ground_truth_status BOOLEAN,
    object_id VARCHAR,
    object_name VARCHAR,
    object_description VARCHAR,
    object_state VARCHAR,
    object_count INTEGER,
    confidence_precision DOUBLE PRECISION,
    confidence_recall DOUBLE PRECISION,
    ground_truth_used VARCHAR,
    annotation_software VARCHAR,
    is_curator_recommended BOOLEAN,
    deposition_date TIMESTAMP WITH TIME ZONE,
    release_date TIMESTAMP WITH TIME ZONE,
    last_modified_date TIMESTAMP WITH TIME ZONE
);
CREATE INDEX IF NOT EXISTS ix_annotation_run_id ON annotation (run_id);
CREATE INDEX IF NOT EXISTS ix_annotation_deposition_id ON annotation (deposition_id);
CREATE INDEX IF NOT EXISTS ix_annotation_tomogram_voxel_spacing_id ON annotation (tomogram_voxel_spacing_id);

CREATE TABLE IF NOT EXISTS annotation_shape (
    id SERIAL PRIMARY KEY,
    annotation_id INTEGER REFERENCES annotation (id),
    shape_type VARCHAR(24)
);
CREATE INDEX IF NOT EXISTS ix_annotation_shape_annotation_id ON annotation_shape (annotation_id);

CREATE TABLE IF NOT EXISTS annotation_file (
    id SERIAL PRIMARY KEY,
    alignment_id INTEGER,
    annotation_shape_id INTEGER REFERENCES annotation_shape (id),
    tomogram_voxel_spacing_id INTEGER REFERENCES tomogram_voxel_spacing (id),
    format VARCHAR NOT NULL,
    s3_path VARCHAR NOT NULL,
    https_path VARCHAR,
    file_size BIGINT,
    is_visualization_default BOOLEAN,
    source VARCHAR(15)
);
CREATE INDEX IF NOT EXISTS ix_annotation_file_annotation_shape_id ON annotation_file (annotation_shape_id);
CREATE INDEX IF NOT EXISTS ix_annotation_file_tomogram_voxel_spacing_id ON annotation_file (tomogram_voxel_spacing_id);

CREATE TABLE IF NOT EXISTS annotation_author (
    id SERIAL PRIMARY KEY,
    annotation_id INTEGER REFERENCES annotation (id),
    author_list_order INTEGER,
    name VARCHAR NOT NULL,
    orcid VARCHAR,
    email VARCHAR,
    affiliation_name VARCHAR,
    affiliation_address VARCHAR,
    affiliation_identifier VARCHAR,
    corresponding_author_status BOOLEAN,
    primary_author_status BOOLEAN,
    kaggle_id VARCHAR
);
CREATE INDEX IF NOT EXISTS ix_annotation_author_annotation_id ON annotation_author (annotation_id);

CREATE TABLE IF NOT EXISTS annotation_method_link (
    id SERIAL PRIMARY KEY,
    annotation_id INTEGER REFERENCES annotation (id),
    link_type VARCHAR(14),
    name VARCHAR,
    link VARCHAR NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_annotation_method_link_annotation_id ON annotation_method_link (annotation_id);
