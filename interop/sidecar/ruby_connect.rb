# The seed's Ruby snippet with the token code removed: the pgentra proxy (sidecar) answers the
# server's password request, so the app only names host, port, database and user
# (PGHOST/PGPORT/PGDATABASE/PGUSER). Prints current_user; exits non-zero on failure.
require 'pg'

conn = PG::Connection.new(
  host: ENV['PGHOST'],
  port: ENV['PGPORT'],
  dbname: ENV['PGDATABASE'],
  user: ENV['PGUSER']
)
row = conn.exec_params('select current_user, $1::int + 1', [41]).first
raise "unexpected answer #{row.values[1]}" unless row.values[1] == '42'
puts row.values[0]
conn.close
