-- The application's PostgreSQL role: it may read and write the tables, nothing else.
--
-- Run by the database owner (compose's POSTGRES_USER, "guideline", which also
-- runs the migrations) in the application's database, through
-- docker/postgres-init.sh, which sets the psql variables app_role and
-- app_password and feeds this file to psql; the postgres image runs that script
-- when its volume is first created. Idempotent: a re-run updates the password
-- and the grants. tests/integration/celery/test_app_role.py runs it for real.

SELECT format('CREATE ROLE %I LOGIN', :'app_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_role')
\gexec
-- Not a superuser, cannot create roles or databases, no replication.
SELECT format(
    'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
    :'app_role', :'app_password'
)
\gexec

-- Only the owner and the application may connect; nobody else creates objects.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database())
\gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), :'app_role')
\gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app_role";

-- The tables that exist now (a re-run after migrations) ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
-- ... and every table and sequence the owner creates later (the migrations).
ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
