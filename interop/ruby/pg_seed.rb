# The Service Connector guide's Ruby snippet (REST token + pg), run against pgentra.
#
# The seed says "uncomment the corresponding part of the code snippet according to the
# authentication type"; here ARGV[0] (system | user | sp) picks that part instead. Fixes of the
# seed's obvious slips, and nothing else:
#   * user-assigned: `ENV[IDENTITY_ENDPOINT]` lacks its quotes; the query parameter is
#     `client_id` (the App Service API ignores the seed's `client-id` and would answer with the
#     system-assigned identity, whose token cannot log in as the user-assigned identity's role);
#   * service principal: `:client_id: =>` is `:client_id =>`, `Net::HTTP::POST` is
#     `Net::HTTP::Post`, the block lacks its `end`; the authority is AZURE_AUTHORITY_HOST, the
#     Azure SDKs' standard variable for it, defaulting to the seed's
#     https://login.microsoftonline.com (TLS trust: OpenSSL reads SSL_CERT_FILE);
#   * `PG::Connection.new(connection_string: …)` passes a libpq option named `connection_string`,
#     which libpq rejects: the string itself is passed;
#   * a failed token request ends the program with its status instead of a nil access token.
# Prints current_user; any failure exits non-zero.
require 'pg'
require 'dotenv/load'
require 'net/http'
require 'json'

auth = ARGV[0] || 'system'
case auth
when 'system'
  # For system-assigned identity.
  uri = URI(ENV['IDENTITY_ENDPOINT'] + '?resource=https://ossrdbms-aad.database.windows.net&api-version=2019-08-01')
  res = Net::HTTP.get_response(uri, {'X-IDENTITY-HEADER' => ENV['IDENTITY_HEADER'], 'Metadata' => 'true'})
when 'user'
  # For user-assigned identity.
  uri = URI(ENV['IDENTITY_ENDPOINT'] + '?resource=https://ossrdbms-aad.database.windows.net&api-version=2019-08-01&client_id=' + ENV['AZURE_POSTGRESQL_CLIENTID'])
  res = Net::HTTP.get_response(uri, {'X-IDENTITY-HEADER' => ENV['IDENTITY_HEADER'], 'Metadata' => 'true'})
when 'sp'
  # For service principal
  uri = URI((ENV['AZURE_AUTHORITY_HOST'] || 'https://login.microsoftonline.com').chomp('/') + '/' + ENV['AZURE_POSTGRESQL_TENANTID'] + '/oauth2/v2.0/token')
  params = {
      :grant_type => 'client_credentials',
      :client_id => ENV['AZURE_POSTGRESQL_CLIENTID'],
      :client_secret => ENV['AZURE_POSTGRESQL_CLIENTSECRET'],
      :scope => 'https://ossrdbms-aad.database.windows.net/.default'
  }
  req = Net::HTTP::Post.new(uri)
  req.set_form_data(params)
  req['Content-Type'] = 'application/x-www-form-urlencoded'
  res = Net::HTTP.start(uri.hostname, uri.port, :use_ssl => true) do |http|
    http.request(req)
  end
else
  abort "unknown authentication type #{auth.inspect}: use system, user or sp"
end
abort "error: token request answered #{res.code}: #{res.body.to_s[0, 300]}" unless res.is_a?(Net::HTTPSuccess)

parsed = JSON.parse(res.body)
access_token = parsed["access_token"]

# Use the token and the connection string from the environment variables added by Service Connector to establish the connection.
conn = PG::Connection.new(
    ENV['AZURE_POSTGRESQL_CONNECTIONSTRING'] + " password="  + access_token,
)

puts conn.exec('select current_user').getvalue(0, 0)
conn.close
