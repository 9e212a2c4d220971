//! `pgentra grant`: the seed's owner step — grant a role the schema's tables and sequences,
//! then run the seed's validation query.

use std::process::ExitCode;

use crate::cli::{Global, GrantArgs};
use crate::stack::{identifier, literal};
use crate::{db, output};

/// The GRANT statements of the seed (plus default privileges when asked).
pub fn grant_sql(role: &str, schema: &str, default_privileges: bool) -> String {
    let (r, s) = (identifier(role), identifier(schema));
    let mut sql = format!(
        "GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA {s} TO {r};\
         GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA {s} TO {r};"
    );
    if default_privileges {
        sql.push_str(&format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT ALL PRIVILEGES ON TABLES TO {r};\
             ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT ALL PRIVILEGES ON SEQUENCES TO {r};"
        ));
    }
    sql
}

/// The seed's validation query.
pub fn validation_sql(role: &str, schema: &str) -> String {
    format!(
        "SELECT distinct(table_name) FROM information_schema.table_privileges WHERE grantee={} AND table_schema={} ORDER BY 1;",
        literal(role),
        literal(schema)
    )
}

pub async fn run(global: &Global, args: GrantArgs) -> anyhow::Result<ExitCode> {
    let client = db::connect(&args.conn).await?;
    db::query(
        &client,
        &grant_sql(&args.role, &args.schema, args.default_privileges),
    )
    .await?;
    let (columns, rows) = db::query(&client, &validation_sql(&args.role, &args.schema)).await?;
    output::print_rows(global.output, &columns, &rows);
    Ok(ExitCode::SUCCESS)
}
