package dev.pgentra.interop;

import java.sql.*;

/**
 * The Service Connector guide's Java tab (pgjdbc + the azure-identity-extensions authentication
 * plugin), run against pgentra.
 *
 * <p>The seed gives one snippet for every authentication type: the connection string plus the
 * plugin. args[0] (system | user | sp) adds what the plugin needs to pick the identity, with its
 * documented {@code azure.*} JDBC properties, because Service Connector's Java variables carry the
 * user-assigned client id and the service principal only as AZURE_POSTGRESQL_* variables, which
 * the plugin does not read:
 * <ul>
 *   <li>system: the snippet as written (the plugin's DefaultAzureCredential finds the managed
 *       identity through IDENTITY_ENDPOINT);
 *   <li>user: {@code &azure.clientId=} (DefaultAzureCredential's managed identity client id);
 *   <li>sp: {@code &azure.clientId=&azure.clientSecret=&azure.tenantId=}, plus
 *       {@code azure.tokenCredentialProviderClassName} naming {@link ClientSecretProvider}, because
 *       the plugin offers no property to disable instance discovery (see that class).
 * </ul>
 * Fix of the seed's obvious slip: the plugin's package is {@code com.azure…}, not
 * {@code com.Azure…} (Java class names are case-sensitive).
 * Prints current_user; any failure exits non-zero.
 */
public class JdbcSeed {
    public static void main(String[] args) {
        String auth = args.length > 0 ? args[0] : "system";
        try {
            String url = System.getenv("AZURE_POSTGRESQL_CONNECTIONSTRING");
            String pluginName = "com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin";
            String identity;
            switch (auth) {
                case "system":
                    identity = "";
                    break;
                case "user":
                    identity = "&azure.clientId=" + System.getenv("AZURE_POSTGRESQL_CLIENTID");
                    break;
                case "sp":
                    identity = "&azure.clientId=" + System.getenv("AZURE_POSTGRESQL_CLIENTID")
                        + "&azure.clientSecret=" + System.getenv("AZURE_POSTGRESQL_CLIENTSECRET")
                        + "&azure.tenantId=" + System.getenv("AZURE_POSTGRESQL_TENANTID")
                        + "&azure.tokenCredentialProviderClassName=" + ClientSecretProvider.class.getName();
                    break;
                default:
                    System.err.println("unknown authentication type '" + auth + "': use system, user or sp");
                    System.exit(2);
                    return;
            }
            try (Connection connection = DriverManager.getConnection(url + "&authenticationPluginClassName=" + pluginName + identity);
                 Statement st = connection.createStatement();
                 ResultSet rs = st.executeQuery("select current_user")) {
                rs.next();
                System.out.println(rs.getString(1));
            }
        } catch (Exception e) {
            System.err.println("error: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                System.err.println("caused by: " + c);
            }
            System.exit(1);
        }
        // The identity SDK leaves non-daemon threads behind; the program's work is done.
        System.exit(0);
    }
}
