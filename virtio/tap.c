/* TAP devices: open an existing one and check that it can carry the guest's frames. */
#include "virtio/tap.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Whether interface name is up; -errno when it cannot be asked. Any socket carries the
 * interface ioctls; a Unix one needs no network privilege. */
static int link_is_up(const char *name)
{
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int rc = ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ? -errno : !!(ifr.ifr_flags & IFF_UP);
	close(s);
	return rc;
}

int tap_attach(const char *iface_id, const char *name, char *err)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errf(err, -errno, "network interface %s: cannot open /dev/net/tun: %s",
			    iface_id, strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) == 0)
		return fd;
	/* EINVAL: the flags do not match the device's: a TUN, or a multi-queue TAP. */
	int rc = errf(err, -errno, "network interface %s: cannot attach to TAP %s: %s", iface_id,
		      name,
		      errno == EBUSY	? "it is in use by another process"
		      : errno == EINVAL ? "it is not a TAP device, or is a multi-queue one"
		      : errno == EPERM	? "permission denied (its owner or CAP_NET_ADMIN needed)"
					: strerror(errno));
	close(fd);
	return rc;
}

int tap_open(const char *iface_id, const char *name, int vnet_hdr_len, char *err)
{
	if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ)
		return errf(err, -EINVAL,
			    "network interface %s: host_dev_name '%s' must be 1 to %d characters",
			    iface_id, name, IFNAMSIZ - 1);
	/* TUNSETIFF would create a missing device when ember may do so: the orchestrator owns
	 * its network, so a missing TAP is its mistake to hear about, not ours to fix. */
	if (if_nametoindex(name) == 0)
		return errf(err, -ENODEV,
			    "network interface %s: TAP device %s does not exist (create it with "
			    "'ip tuntap add dev %s mode tap')",
			    iface_id, name, name);
	int fd = tap_attach(iface_id, name, err);
	if (fd < 0)
		return fd;
	int rc;
	if (ioctl(fd, TUNSETVNETHDRSZ, &vnet_hdr_len) < 0)
		rc = errf(err, -errno, "network interface %s: TAP %s: TUNSETVNETHDRSZ: %s",
			  iface_id, name, strerror(errno));
	else if (tap_set_offload(fd, 0) < 0)
		rc = errf(err, -errno, "network interface %s: TAP %s: TUNSETOFFLOAD: %s", iface_id,
			  name, strerror(errno));
	else if ((rc = link_is_up(name)) == 0)
		rc = errf(err, -ENETDOWN,
			  "network interface %s: TAP %s is down (ip link set %s up)", iface_id,
			  name, name);
	else if (rc < 0)
		errf(err, rc, "network interface %s: TAP %s: SIOCGIFFLAGS: %s", iface_id, name,
		     strerror(-rc));
	else
		rc = 0;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int tap_set_offload(int fd, unsigned tun_flags)
{
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)tun_flags) < 0 ? -errno : 0;
}
