/* The provider record handed to the libfabric core, and core services. */
#include <string.h>
#include <rdma/providers/fi_log.h>
#include "srd_shim.h"

static int srd_getinfo(uint32_t version, const char *node, const char *service,
		       uint64_t flags, const struct fi_info *hints, struct fi_info **info)
{
	return srd_rs_getinfo(version, node, service, flags, hints, info);
}

static int srd_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context)
{
	return srd_rs_fabric(attr, fabric, context);
}

static void srd_cleanup(void)
{
	srd_rs_cleanup();
}

static struct fi_provider srd_prov = {
	.version = FI_VERSION(0, 1),
	.fi_version = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION),
	.name = "srd",
	.getinfo = srd_getinfo,
	.fabric = srd_fabric,
	.cleanup = srd_cleanup,
};

struct fi_provider *srd_shim_provider(void)
{
	return &srd_prov;
}

int srd_shim_log_enabled(int level, int subsys)
{
	return fi_log_enabled(&srd_prov, (enum fi_log_level)level, (enum fi_log_subsys)subsys);
}

void srd_shim_log(int level, int subsys, const char *func, int line, const char *msg)
{
	fi_log(&srd_prov, (enum fi_log_level)level, (enum fi_log_subsys)subsys, func, line, "%s\n", msg);
}
