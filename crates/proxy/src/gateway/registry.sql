-- pgentra principal registry: Azure Database for PostgreSQL's pgaadauth functions, for a
-- self-hosted server behind the pgentra gateway. Install into the `postgres` database.
-- Idempotent: running it again upgrades functions in place and keeps registered principals.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        CREATE ROLE azure_pg_admin NOLOGIN CREATEROLE CREATEDB;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS pgaadauth;
REVOKE ALL ON SCHEMA pgaadauth FROM PUBLIC;
GRANT USAGE ON SCHEMA pgaadauth TO azure_pg_admin;

-- One row per Entra-bound role. `label` mirrors Azure's security label text.
CREATE TABLE IF NOT EXISTS pgaadauth.principals (
    rolname        name PRIMARY KEY,
    object_id      text NOT NULL,
    principal_type text NOT NULL CHECK (principal_type IN ('user', 'group', 'service')),
    tenant_id      text NOT NULL DEFAULT '',
    is_admin       boolean NOT NULL DEFAULT false,
    is_mfa         boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    label          text GENERATED ALWAYS AS (
        'aadauth,oid=' || object_id || ',type=' || principal_type
        || CASE WHEN is_admin THEN ',admin' ELSE '' END) STORED
);

-- The identity directory (stands in for Microsoft Graph): names to object ids, filled by the
-- gateway from its configuration.
CREATE TABLE IF NOT EXISTS pgaadauth.directory (
    display_name text NOT NULL,
    object_id    text NOT NULL,
    object_type  text NOT NULL CHECK (object_type IN ('user', 'group', 'service')),
    tenant_id    text NOT NULL DEFAULT '',
    PRIMARY KEY (display_name, object_id)
);

CREATE TABLE IF NOT EXISTS pgaadauth.settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON pgaadauth.principals TO azure_pg_admin;
GRANT SELECT ON pgaadauth.directory, pgaadauth.settings TO azure_pg_admin;

-- Gateways LISTEN on this channel and reload the registry when it fires.
CREATE OR REPLACE FUNCTION pgaadauth.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgaadauth_principals', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS principals_changed ON pgaadauth.principals;
CREATE TRIGGER principals_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgaadauth.principals
    FOR EACH STATEMENT EXECUTE FUNCTION pgaadauth.notify_change();

CREATE OR REPLACE FUNCTION public.pgaadauth_create_principal_with_oid(
    roleName text, objectId text, objectType text, isAdmin boolean, isMfa boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    tenant text := coalesce(
        (SELECT nullif(tenant_id, '') FROM pgaadauth.directory WHERE object_id = lower(objectId) LIMIT 1),
        (SELECT value FROM pgaadauth.settings WHERE key = 'tenant_id'),
        '');
BEGIN
    IF roleName IS NULL OR roleName = '' THEN
        RAISE EXCEPTION 'Failed to create Azure AD Principal. Reason - role name must not be empty.';
    END IF;
    IF objectType IS NULL OR objectType NOT IN ('user', 'group', 'service') THEN
        RAISE EXCEPTION 'Failed to create Azure AD Principal. Reason - invalid object type "%": expected user, group or service.', objectType;
    END IF;
    IF objectId IS NULL OR objectId !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RAISE EXCEPTION 'Failed to create Azure AD Principal. Reason - object id "%" is not a valid GUID.', objectId;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = roleName) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', roleName);
    END IF;
    IF isAdmin THEN
        EXECUTE format('GRANT azure_pg_admin TO %I', roleName);
        EXECUTE format('ALTER ROLE %I CREATEROLE CREATEDB', roleName);
    END IF;
    INSERT INTO pgaadauth.principals (rolname, object_id, principal_type, tenant_id, is_admin, is_mfa)
        VALUES (roleName, lower(objectId), objectType, tenant, coalesce(isAdmin, false), coalesce(isMfa, false))
        ON CONFLICT (rolname) DO UPDATE
        SET object_id = excluded.object_id, principal_type = excluded.principal_type,
            tenant_id = excluded.tenant_id, is_admin = excluded.is_admin, is_mfa = excluded.is_mfa;
    RETURN format('Created role for "%s"', roleName);
END
$$;

CREATE OR REPLACE FUNCTION public.pgaadauth_create_principal(
    roleName text, isAdmin boolean, isMfa boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    matches integer;
    entry pgaadauth.directory;
BEGIN
    SELECT count(*) INTO matches FROM pgaadauth.directory WHERE lower(display_name) = lower(roleName);
    IF matches = 0 THEN
        RAISE EXCEPTION 'Could not validate AAD user % because its name is not found in the tenant.', roleName;
    ELSIF matches > 1 THEN
        RAISE EXCEPTION 'Cannot validate Microsoft Entra ID user because its name isn''t unique';
    END IF;
    SELECT * INTO entry FROM pgaadauth.directory WHERE lower(display_name) = lower(roleName);
    RETURN public.pgaadauth_create_principal_with_oid(roleName, entry.object_id, entry.object_type, isAdmin, isMfa);
END
$$;

CREATE OR REPLACE FUNCTION public.pgaadauth_list_principals(isAdminValue boolean)
RETURNS TABLE(rolname name, principalType text, objectId text, tenantId text, isMfa integer, isAdmin integer)
LANGUAGE sql STABLE AS $$
    SELECT p.rolname, p.principal_type, p.object_id, p.tenant_id, p.is_mfa::integer, p.is_admin::integer
    FROM pgaadauth.principals p
    JOIN pg_roles r ON r.rolname = p.rolname
    WHERE NOT isAdminValue OR p.is_admin
    ORDER BY p.rolname
$$;

CREATE OR REPLACE FUNCTION public.pgaadauth_drop_principal(roleName text)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgaadauth.principals WHERE rolname = roleName) THEN
        RAISE EXCEPTION 'role "%" is not a Microsoft Entra ID principal', roleName;
    END IF;
    DELETE FROM pgaadauth.principals WHERE rolname = roleName;
    EXECUTE format('DROP ROLE IF EXISTS %I', roleName);
    RETURN format('Dropped role for "%s"', roleName);
END
$$;
