#ifndef EMBER_VERSION_H
#define EMBER_VERSION_H

#define EMBER_VERSION "0.1.0"
/* The Firecracker API ember implements, as GET /version reports it: its endpoints, bodies,
 * messages and GET /vm/config shape (README, "Firecracker compatibility"). */
#define EMBER_FC_API_VERSION "1.10.0"

#endif
