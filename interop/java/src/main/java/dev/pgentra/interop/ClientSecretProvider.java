package dev.pgentra.interop;

import com.azure.core.credential.TokenCredential;
import com.azure.identity.ClientSecretCredentialBuilder;
import com.azure.identity.extensions.implementation.credential.TokenCredentialProviderOptions;
import com.azure.identity.extensions.implementation.credential.provider.TokenCredentialProvider;

/**
 * The credential the plugin's DefaultTokenCredentialProvider builds for a client secret, plus
 * {@code disableInstanceDiscovery()}: the one documented azure-identity option needed to use an
 * authority other than login.microsoftonline.com (MSAL4J would otherwise ask
 * login.microsoftonline.com about the emulator's host). The plugin (1.1.5) has no property for it;
 * its {@code azure.tokenCredentialProviderClassName} property is the way to supply the credential,
 * and the interface it names lives in the plugin's implementation package.
 */
public class ClientSecretProvider implements TokenCredentialProvider {
    private final TokenCredential credential;

    public ClientSecretProvider(TokenCredentialProviderOptions options) {
        this.credential = new ClientSecretCredentialBuilder()
            .authorityHost(options.getAuthorityHost())
            .tenantId(options.getTenantId())
            .clientId(options.getClientId())
            .clientSecret(options.getClientSecret())
            .disableInstanceDiscovery()
            .build();
    }

    @Override
    public TokenCredential get() {
        return credential;
    }
}
