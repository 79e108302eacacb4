/**
 * The one place the agent loads `@peculiar/x509`: it needs `reflect-metadata`
 * loaded first (its ASN.1 schemas use decorators) and a WebCrypto provider.
 * Import `x509` from here, never from the package.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

export { x509 };
