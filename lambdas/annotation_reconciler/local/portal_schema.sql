-- The nine tables of the CryoET Data Portal's apiv2 schema that annotation-reconciler touches, as the
-- portal's own migrations leave them (chanzuckerberg/cryoet-data-portal-backend at commit 87d1ca4a,
-- apiv2/database/models and apiv2/database/migrations): every column with its type, NOT NULL and
-- default, enums stored as VARCHAR of the migrations' length (no CHECK), SERIAL keys, foreign keys
-- WITHOUT "ON DELETE CASCADE", and the portal's index names. tests/data/portal_schema_facts.json
-- holds the same facts and tests/integration/test_portal_schema.py compares the two column by column.
-- The portal's alignment table is reduced to its key (annotation_file.alignment_id points at it) and the
-- two columns the annotation importer looks an alignment up by (run_id, s3_alignment_metadata).
-- Used by the tests, the demo and the benchmarks to stand in for a portal database.

CREATE TABLE IF NOT EXISTS alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE IF NOT EXISTS alignment (
    run_id INTEGER,
    s3_alignment_metadata VARCHAR,
    id SERIAL NOT NULL,
    CONSTRAINT pk_alignment PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_alignment_id ON alignment (id);

CREATE TABLE IF NOT EXISTS deposition (
    title VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    tag VARCHAR,
    deposition_publications VARCHAR,
    related_database_entries VARCHAR,
    deposition_date TIMESTAMP WITH TIME ZONE NOT NULL,
    release_date TIMESTAMP WITH TIME ZONE NOT NULL,
    last_modified_date TIMESTAMP WITH TIME ZONE NOT NULL,
    key_photo_url VARCHAR,
    key_photo_thumbnail_url VARCHAR,
    id SERIAL NOT NULL,
    CONSTRAINT pk_deposition PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_deposition_id ON deposition (id);

CREATE TABLE IF NOT EXISTS dataset (
    deposition_id INTEGER NOT NULL,
    title VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    assay_label VARCHAR,
    assay_ontology_id VARCHAR,
    development_stage_name VARCHAR,
    development_stage_ontology_id VARCHAR,
    disease_name VARCHAR,
    disease_ontology_id VARCHAR,
    organism_name VARCHAR,
    organism_taxid INTEGER,
    tissue_name VARCHAR,
    tissue_id VARCHAR,
    cell_name VARCHAR,
    cell_type_id VARCHAR,
    cell_strain_name VARCHAR,
    cell_strain_id VARCHAR,
    sample_type VARCHAR(20),
    sample_preparation VARCHAR,
    grid_preparation VARCHAR,
    other_setup VARCHAR,
    key_photo_url VARCHAR,
    key_photo_thumbnail_url VARCHAR,
    cell_component_name VARCHAR,
    cell_component_id VARCHAR,
    deposition_date TIMESTAMP WITH TIME ZONE NOT NULL,
    release_date TIMESTAMP WITH TIME ZONE NOT NULL,
    last_modified_date TIMESTAMP WITH TIME ZONE NOT NULL,
    dataset_publications VARCHAR,
    related_database_entries VARCHAR,
    s3_prefix VARCHAR NOT NULL,
    https_prefix VARCHAR NOT NULL,
    file_size DOUBLE PRECISION,
    id SERIAL NOT NULL,
    CONSTRAINT fk_dataset_deposition_id_deposition FOREIGN KEY (deposition_id) REFERENCES deposition (id),
    CONSTRAINT pk_dataset PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_dataset_id ON dataset (id);
CREATE INDEX IF NOT EXISTS ix_dataset_deposition_id ON dataset (deposition_id);

CREATE TABLE IF NOT EXISTS run (
    dataset_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    s3_prefix VARCHAR NOT NULL,
    https_prefix VARCHAR NOT NULL,
    id SERIAL NOT NULL,
    CONSTRAINT fk_run_dataset_id_dataset FOREIGN KEY (dataset_id) REFERENCES dataset (id),
    CONSTRAINT pk_run PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_run_id ON run (id);
CREATE INDEX IF NOT EXISTS ix_run_dataset_id ON run (dataset_id);

CREATE TABLE IF NOT EXISTS tomogram_voxel_spacing (
    run_id INTEGER,
    voxel_spacing DOUBLE PRECISION NOT NULL,
    s3_prefix VARCHAR NOT NULL,
    https_prefix VARCHAR NOT NULL,
    id SERIAL NOT NULL,
    CONSTRAINT fk_tomogram_voxel_spacing_run_id_run FOREIGN KEY (run_id) REFERENCES run (id),
    CONSTRAINT pk_tomogram_voxel_spacing PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_tomogram_voxel_spacing_id ON tomogram_voxel_spacing (id);
CREATE INDEX IF NOT EXISTS ix_tomogram_voxel_spacing_run_id ON tomogram_voxel_spacing (run_id);

CREATE TABLE IF NOT EXISTS annotation (
    run_id INTEGER,
    deposition_id INTEGER,
    tomogram_voxel_spacing_id INTEGER,
    s3_metadata_path VARCHAR NOT NULL,
    https_metadata_path VARCHAR NOT NULL,
    annotation_publication VARCHAR,
    annotation_method VARCHAR NOT NULL,
    annotation_ingest_id VARCHAR NOT NULL,
    ground_truth_status BOOLEAN,
    object_id VARCHAR NOT NULL,
    object_name VARCHAR NOT NULL,
    object_description VARCHAR,
    object_state VARCHAR,
    object_count INTEGER,
    confidence_precision DOUBLE PRECISION,
    confidence_recall DOUBLE PRECISION,
    ground_truth_used VARCHAR,
    annotation_software VARCHAR,
    is_curator_recommended BOOLEAN,
    method_type VARCHAR(9) NOT NULL,
    deposition_date TIMESTAMP WITH TIME ZONE NOT NULL,
    release_date TIMESTAMP WITH TIME ZONE NOT NULL,
    last_modified_date TIMESTAMP WITH TIME ZONE NOT NULL,
    id SERIAL NOT NULL,
    CONSTRAINT fk_annotation_run_id_run FOREIGN KEY (run_id) REFERENCES run (id),
    CONSTRAINT fk_annotation_deposition_id_deposition FOREIGN KEY (deposition_id) REFERENCES deposition (id),
    CONSTRAINT fk_annotation_tomogram_voxel_spacing_id_tomogram_voxel_spacing FOREIGN KEY (tomogram_voxel_spacing_id) REFERENCES tomogram_voxel_spacing (id),
    CONSTRAINT pk_annotation PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_annotation_id ON annotation (id);
CREATE INDEX IF NOT EXISTS ix_annotation_run_id ON annotation (run_id);
CREATE INDEX IF NOT EXISTS ix_annotation_deposition_id ON annotation (deposition_id);
CREATE INDEX IF NOT EXISTS ix_annotation_tomogram_voxel_spacing_id ON annotation (tomogram_voxel_spacing_id);

CREATE TABLE IF NOT EXISTS annotation_shape (
    annotation_id INTEGER,
    shape_type VARCHAR(24),
    id SERIAL NOT NULL,
    CONSTRAINT fk_annotation_shape_annotation_id_annotation FOREIGN KEY (annotation_id) REFERENCES annotation (id),
    CONSTRAINT pk_annotation_shape PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_annotation_shape_id ON annotation_shape (id);
CREATE INDEX IF NOT EXISTS ix_annotation_shape_annotation_id ON annotation_shape (annotation_id);

CREATE TABLE IF NOT EXISTS annotation_file (
    alignment_id INTEGER,
    annotation_shape_id INTEGER,
    tomogram_voxel_spacing_id INTEGER,
    format VARCHAR NOT NULL,
    s3_path VARCHAR NOT NULL,
    file_size DOUBLE PRECISION,
    https_path VARCHAR NOT NULL,
    is_visualization_default BOOLEAN,
    source VARCHAR(15),
    id SERIAL NOT NULL,
    CONSTRAINT fk_annotation_file_alignment_id_alignment FOREIGN KEY (alignment_id) REFERENCES alignment (id),
    CONSTRAINT fk_annotation_file_annotation_shape_id_annotation_shape FOREIGN KEY (annotation_shape_id) REFERENCES annotation_shape (id),
    CONSTRAINT fk_annotation_file_tomogram_voxel_spacing_id_tomogram_v_70cb FOREIGN KEY (tomogram_voxel_spacing_id) REFERENCES tomogram_voxel_spacing (id),
    CONSTRAINT pk_annotation_file PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_annotation_file_id ON annotation_file (id);
CREATE INDEX IF NOT EXISTS ix_annotation_file_alignment_id ON annotation_file (alignment_id);
CREATE INDEX IF NOT EXISTS ix_annotation_file_annotation_shape_id ON annotation_file (annotation_shape_id);
CREATE INDEX IF NOT EXISTS ix_annotation_file_tomogram_voxel_spacing_id ON annotation_file (tomogram_voxel_spacing_id);

CREATE TABLE IF NOT EXISTS annotation_author (
    annotation_id INTEGER,
    id SERIAL NOT NULL,
    author_list_order INTEGER NOT NULL,
    orcid VARCHAR,
    kaggle_id VARCHAR,
    name VARCHAR NOT NULL,
    email VARCHAR,
    affiliation_name VARCHAR,
    affiliation_address VARCHAR,
    affiliation_identifier VARCHAR,
    corresponding_author_status BOOLEAN,
    primary_author_status BOOLEAN,
    CONSTRAINT fk_annotation_author_annotation_id_annotation FOREIGN KEY (annotation_id) REFERENCES annotation (id),
    CONSTRAINT pk_annotation_author PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_annotation_author_id ON annotation_author (id);
CREATE INDEX IF NOT EXISTS ix_annotation_author_annotation_id ON annotation_author (annotation_id);

CREATE TABLE IF NOT EXISTS annotation_method_link (
    annotation_id INTEGER,
    link_type VARCHAR(14) NOT NULL,
    name VARCHAR,
    link VARCHAR NOT NULL,
    id SERIAL NOT NULL,
    CONSTRAINT fk_annotation_method_link_annotation_id_annotation FOREIGN KEY (annotation_id) REFERENCES annotation (id),
    CONSTRAINT pk_annotation_method_link PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_annotation_method_link_id ON annotation_method_link (id);
CREATE INDEX IF NOT EXISTS ix_annotation_method_link_annotation_id ON annotation_method_link (annotation_id);
