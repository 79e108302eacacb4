import { z } from "zod";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A DNS-1123 label: what namespaces, services and instance ids are (as in Kubernetes). */
export const labelName = z.string().max(63, "Must be at most 63 characters").regex(
  DNS1123_LABEL,
  "Must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
);

/** A DNS-1123 subdomain: what node names are, so that a host name can be one. */
export const subdomainName = z.string().max(253, "Must be at most 253 characters").regex(
  DNS1123_SUBDOMAIN,
  "Must be a DNS-1123 subdomain: lower-case labels of letters, digits and '-', joined by '.'",
);

/** True when `name` is a DNS-1123 label. */
export function isLabelName(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

/** True when `name` is a DNS-1123 subdomain. */
export function isSubdomainName(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}
