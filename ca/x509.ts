/**
 * The one place that loads `@peculiar/x509`, for the CA and the agent alike.
 * The library's dependency injection needs `reflect-metadata` evaluated before
 * its own module body, and it must be told which WebCrypto to use; doing both
 * here, once, means every other file imports `x509` from this module and never
 * from the package.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

export { x509 };
