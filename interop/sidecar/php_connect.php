<?php
// The seed's PHP snippet with the token code removed: the connection string has no password;
// the pgentra proxy (sidecar) answers the server's password request with a fresh token.
// Prints current_user; exits 1 on failure.
$conn_string = sprintf(
    "host=%s port=%s dbname=%s user=%s",
    getenv('PGHOST'), getenv('PGPORT'), getenv('PGDATABASE'), getenv('PGUSER')
);
$dbconn = pg_connect($conn_string);
if ($dbconn === false) {
    fwrite(STDERR, "connect failed\n");
    exit(1);
}
$result = pg_query_params($dbconn, 'select current_user, $1::int + 1', array(41));
$row = pg_fetch_row($result);
if ($row[1] !== '42') {
    fwrite(STDERR, "unexpected answer {$row[1]}\n");
    exit(1);
}
echo $row[0], "\n";
pg_close($dbconn);
