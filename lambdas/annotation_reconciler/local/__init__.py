"""Local stand-ins for production: a throwaway PostgreSQL, a moto S3/SQS server, a synthetic portal."""
