/**
 * NATS decentralised auth for docflow (operator mode, accounts in JWTs).
 *
 * One operator, a system account and the DOCFLOW account (JetStream enabled).
 * The services connect with a user credential of DOCFLOW; the gateway holds a
 * signing key of DOCFLOW and mints short-lived bearer user JWTs for browsers,
 * allowed to subscribe to their tenant's event subjects only. Why JWTs rather
 * than auth callout: minting is local to the gateway (no round trip per
 * browser connection, no callout service to keep available), expiry and
 * permissions are enforced by nats-server itself, and it works on every
 * nats-server since 2.2, including Debian's 2.9.
 */
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";

export interface NatsAuth {
  /** nats-server configuration lines (operator, resolver, preloaded accounts). */
  serverConfig: string;
  /** Credentials file content for the services (gateway, processor). */
  serviceCreds: string;
  /** Seed of the DOCFLOW account's signing key: the gateway signs browser credentials with it. */
  signingSeed: string;
  /** Public key of the DOCFLOW account. */
  account: string;
}

export async function generateNatsAuth(): Promise<NatsAuth> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const signing = createAccount();
  const operatorJwt = await encodeOperator("docflow", operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount("SYS", system, {}, { signer: operator });
  const accountJwt = await encodeAccount(
    "DOCFLOW",
    account,
    {
      signing_keys: [signing.getPublicKey()],
      limits: { subs: -1, data: -1, payload: -1, conn: -1, imports: -1, exports: -1, wildcards: true, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
    },
    { signer: operator },
  );
  const service = createUser();
  const serviceJwt = await encodeUser("docflow-service", service, account);
  return {
    serverConfig: [
      `operator: ${operatorJwt}`,
      `system_account: ${system.getPublicKey()}`,
      "resolver: MEMORY",
      "resolver_preload: {",
      `  ${system.getPublicKey()}: ${systemJwt}`,
      `  ${account.getPublicKey()}: ${accountJwt}`,
      "}",
    ].join("\n"),
    serviceCreds: new TextDecoder().decode(fmtCreds(serviceJwt, service)),
    signingSeed: new TextDecoder().decode(signing.getSeed()),
    account: account.getPublicKey(),
  };
}
