import { z } from "zod";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A DNS-1123 label: what namespaces, services and instance ids are (as in Kubernetes). */
export const labelName = z.string().max(63, "Must be at most 63 characters").regex(
  DNS1123_LABEL,
  "Must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
);

/** Longest label of a DNS name (RFC 1035), and so of each part of a subdomain between dots. */
const MAX_LABEL = 63;

/**
 * Longest node name: a node's name is the Common Name of its certificate,
 * which RFC 5280 caps at 64 characters (`ub-common-name`).
 */
export const MAX_NODE_NAME = 64;

const LABELS_MESSAGE =
  `Each label (the parts between dots) must be at most ${MAX_LABEL} characters`;

/** A DNS-1123 subdomain: a trust domain, and the shape of node names. */
export const subdomainName = z.string().max(253, "Must be at most 253 characters").regex(
  DNS1123_SUBDOMAIN,
  "Must be a DNS-1123 subdomain: lower-case labels of letters, digits and '-', joined by '.'",
).refine(labelsFit, LABELS_MESSAGE);

/** A node name: a DNS-1123 subdomain, so that a host name can be one, of at most 64 characters. */
export const nodeName = subdomainName.max(
  MAX_NODE_NAME,
  `Must be at most ${MAX_NODE_NAME} characters: a node name is its certificate's Common Name (RFC 5280)`,
);

function labelsFit(name: string): boolean {
  return name.split(".").every((label) => label.length <= MAX_LABEL);
}

/** True when `name` is a DNS-1123 label. */
export function isLabelName(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

/** True when `name` is a DNS-1123 subdomain. */
export function isSubdomainName(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name) && labelsFit(name);
}

/** True when `name` is a node name (see {@link nodeName}). */
export function isNodeName(name: string): boolean {
  return name.length <= MAX_NODE_NAME && isSubdomainName(name);
}

/** What a node name must be, for messages. */
export const NODE_NAME_RULE =
  `a DNS-1123 subdomain of at most ${MAX_NODE_NAME} characters, each label at most ${MAX_LABEL}`;
