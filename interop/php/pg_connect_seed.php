<?php
// The Service Connector guide's PHP snippet (REST token + pg_connect), run against pgentra.
//
// The seed describes the token request in prose ("get the access token via REST API with your
// favorite library") and gives code only for the connection. The favourite library here is
// php-curl; argv[1] (system | user | sp) picks the request the prose describes:
//   * managed identity: GET IDENTITY_ENDPOINT with the X-IDENTITY-HEADER header,
//     resource=https://ossrdbms-aad.database.windows.net, and for user-assigned the client id
//     from AZURE_POSTGRESQL_CLIENTID;
//   * service principal: POST {authority}/{tenant}/oauth2/v2.0/token, client_credentials with
//     scope https://ossrdbms-aad.database.windows.net/.default. The authority is
//     AZURE_AUTHORITY_HOST, the Azure SDKs' standard variable for it, defaulting to
//     https://login.microsoftonline.com. php-curl ignores CA variables, so the run passes the CA
//     bundle as `-d curl.cainfo=…`.
// Fix of the seed's obvious slip: its sprintf format has one %s for two arguments, which would
// drop the token ("%s password=" → "%s password=%s").
// Prints current_user; any failure exits non-zero.

function fail($msg) {
    fwrite(STDERR, "error: $msg\n");
    exit(1);
}

function fetch_json($ch) {
    $body = curl_exec($ch);
    if ($body === false) {
        fail("token request: " . curl_error($ch));
    }
    $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    $json = json_decode($body, true);
    if ($status != 200 || !is_array($json) || !isset($json['access_token'])) {
        $why = is_array($json) ? ($json['error_description'] ?? $json['error'] ?? $json['message'] ?? '') : '';
        fail("token request answered $status " . substr((string)$why, 0, 300));
    }
    return $json['access_token'];
}

$auth = $argv[1] ?? 'system';
$resource = 'https://ossrdbms-aad.database.windows.net';

if ($auth === 'system' || $auth === 'user') {
    $query = ['resource' => $resource, 'api-version' => '2019-08-01'];
    if ($auth === 'user') {
        $query['client_id'] = getenv('AZURE_POSTGRESQL_CLIENTID');
    }
    $ch = curl_init(getenv('IDENTITY_ENDPOINT') . '?' . http_build_query($query));
    curl_setopt($ch, CURLOPT_HTTPHEADER, ['X-IDENTITY-HEADER: ' . getenv('IDENTITY_HEADER')]);
} elseif ($auth === 'sp') {
    $authority = getenv('AZURE_AUTHORITY_HOST') ?: 'https://login.microsoftonline.com';
    $ch = curl_init(rtrim($authority, '/') . '/' . getenv('AZURE_POSTGRESQL_TENANTID') . '/oauth2/v2.0/token');
    curl_setopt($ch, CURLOPT_POST, true);
    curl_setopt($ch, CURLOPT_POSTFIELDS, http_build_query([
        'grant_type' => 'client_credentials',
        'client_id' => getenv('AZURE_POSTGRESQL_CLIENTID'),
        'client_secret' => getenv('AZURE_POSTGRESQL_CLIENTSECRET'),
        'scope' => $resource . '/.default',
    ]));
} else {
    fail("unknown authentication type '$auth': use system, user or sp");
}
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_TIMEOUT, 30);
$access_token = fetch_json($ch);

$conn_string = sprintf("%s password=%s", getenv('AZURE_POSTGRESQL_CONNECTIONSTRING'), $access_token);
$dbconn = pg_connect($conn_string);

if ($dbconn === false) {
    fail("pg_connect failed");
}
$result = pg_query($dbconn, "select current_user");
if ($result === false) {
    fail(pg_last_error($dbconn));
}
echo pg_fetch_result($result, 0, 0), "\n";
pg_close($dbconn);
