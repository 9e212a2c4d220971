"""Connects to the pgentra gateway with psycopg2 (libpq) using an Entra token as the password.

All connection settings come from libpq's environment variables (PGHOST, PGPORT, PGUSER,
PGDATABASE, PGPASSWORD=<token>, PGSSLMODE=require). Prints current_user; exits non-zero on
failure with the server's message on stderr.
"""
import sys

import psycopg2


def main() -> int:
    try:
        conn = psycopg2.connect("")
    except psycopg2.OperationalError as e:
        print(f"connect failed: {e}", file=sys.stderr)
        return 1
    with conn, conn.cursor() as cur:
        cur.execute("select current_user, %s::int + 1", (41,))
        user, answer = cur.fetchone()
        assert answer == 42, answer
        print(user)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
