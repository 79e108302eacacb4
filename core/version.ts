/** The Ironmesh release; agents report it and `ironmesh version` prints it. */
export const VERSION = "0.1.0";
