// The Service Connector guide's Go snippet (azidentity + lib/pq), run against pgentra.
//
// The seed says "uncomment the corresponding part of the code snippet according to the
// authentication type"; here os.Args[1] (system | user | sp) picks that part instead. Fixes of
// the seed's obvious slips, and nothing else:
//   - user-assigned: the line `azidentity.ManagedIdentityCredentialOptions.ID := clientid` is not
//     Go and is dropped; `ID: clientid` needs the azidentity.ClientID type;
//   - `[]string("…")` is `[]string{"…"}`; `time` was not imported; `cancel` was never called;
//   - the snippet ignores the errors of GetToken and of the connection: they end the program here;
//   - service principal: `DisableInstanceDiscovery: true`, the one documented SDK option needed to
//     use an authority other than login.microsoftonline.com (MSAL would otherwise ask
//     login.microsoftonline.com about the emulator's host).
//
// `sql.Open` does not connect; the query proves the login and the role.
// Prints current_user; any failure exits non-zero.
package main

import (
	"database/sql"
	"fmt"
	"os"
	"time"

	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	_ "github.com/lib/pq"
)

func main() {
	auth := "system"
	if len(os.Args) > 1 {
		auth = os.Args[1]
	}

	var cred azcore.TokenCredential
	var err error
	switch auth {
	case "system":
		// For system-assigned identity.
		cred, err = azidentity.NewDefaultAzureCredential(nil)
	case "user":
		// For user-assigned identity.
		clientid := os.Getenv("AZURE_POSTGRESQL_CLIENTID")
		options := &azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientid)}
		cred, err = azidentity.NewManagedIdentityCredential(options)
	case "sp":
		// For service principal.
		clientid := os.Getenv("AZURE_POSTGRESQL_CLIENTID")
		tenantid := os.Getenv("AZURE_POSTGRESQL_TENANTID")
		clientsecret := os.Getenv("AZURE_POSTGRESQL_CLIENTSECRET")
		cred, err = azidentity.NewClientSecretCredential(tenantid, clientid, clientsecret,
			&azidentity.ClientSecretCredentialOptions{DisableInstanceDiscovery: true})
	default:
		fail(fmt.Errorf("unknown authentication type %q: use system, user or sp", auth))
	}
	if err != nil {
		fail(err)
	}

	// Acquire the access token
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token, err := cred.GetToken(ctx, policy.TokenRequestOptions{
		Scopes: []string{"https://ossrdbms-aad.database.windows.net/.default"},
	})
	if err != nil {
		fail(err)
	}

	// Combine the token with the connection string from the environment variables added by Service Connector to establish the connection.
	connectionString := os.Getenv("AZURE_POSTGRESQL_CONNECTIONSTRING") + " password=" + token.Token

	conn, err := sql.Open("postgres", connectionString)
	if err != nil {
		fail(err)
	}
	defer conn.Close()

	var user string
	if err := conn.QueryRowContext(ctx, "select current_user").Scan(&user); err != nil {
		fail(err)
	}
	fmt.Println(user)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
