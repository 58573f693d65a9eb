/* Device enumeration and identity: count, handles (by index, UUID, PCI bus
 * id), index, minor number, name, UUID, PCI info, compute capability,
 * utilisation. Every value comes from the shared simulated-GPU state, so it
 * is what the simulated libcuda.so.1 reports for the same ordinal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nvml_sim.h"

#define NVIDIA_PCI_VENDOR_ID 0x10deu

static nvmlReturn_t get_count(unsigned int *deviceCount)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    if (deviceCount == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = nvml_sim_device_count();
    return NVML_SUCCESS;
}

/* v1 counted GPUs NVML could not attach too; the simulated ones all attach. */
nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount) { return get_count(deviceCount); }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) { return get_count(deviceCount); }

static nvmlReturn_t get_handle_by_index(unsigned int index, nvmlDevice_t *device)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    if (device == NULL || index >= nvml_sim_device_count())
        return NVML_ERROR_INVALID_ARGUMENT;
    if (nvml_sim_lost((int)index))
        return NVML_ERROR_GPU_IS_LOST;
    *device = nvml_sim_handle(index);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return get_handle_by_index(index, device);
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    return get_handle_by_index(index, device);
}

/* UUIDs compare case-insensitively: tools pass them in either case. A MIG
 * device's "MIG-..." UUID gives its MIG device handle. */
nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    if (uuid == NULL || device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < (unsigned)sim_entry_count() && i < SIM_MAX_DEVICES; i++) {
        const struct sim_device_info *d = sim_device((int)i);
        if (d && strcasecmp(d->uuid_str, uuid) == 0) {
            if (nvml_sim_lost((int)i))
                return NVML_ERROR_GPU_IS_LOST;
            *device = nvml_sim_handle(i);
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

/* One hexadecimal field of a bus id, all of it consumed up to `end`. */
static int parse_hex(const char *s, const char *end, unsigned long max, unsigned long *out)
{
    if (s == end || end - s > 8)
        return -1;
    char tmp[9];
    memcpy(tmp, s, (size_t)(end - s));
    tmp[end - s] = '\0';
    char *stop;
    unsigned long v = strtoul(tmp, &stop, 16);
    if (*stop != '\0' || tmp[0] == '-' || tmp[0] == '+' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Accepts "domain:bus:device.function" with a 4- or 8-digit domain (the
 * legacy and current formats), and "bus:device.function" (domain 0), in
 * either case, as NVIDIA's parser does. -1 for anything else. */
static int parse_bus_id(const char *id, unsigned long *dom, unsigned long *bus, unsigned long *dev,
                        unsigned long *fn)
{
    const char *c1 = strchr(id, ':');
    if (c1 == NULL)
        return -1;
    const char *c2 = strchr(c1 + 1, ':');
    const char *bus_s = id;
    *dom = 0;
    if (c2) {
        if (parse_hex(id, c1, 0xffffffffUL, dom) != 0)
            return -1;
        bus_s = c1 + 1;
    } else {
        c2 = c1;
    }
    const char *dot = strchr(c2 + 1, '.');
    if (dot == NULL)
        return -1;
    if (parse_hex(bus_s, c2, 0xff, bus) != 0 || parse_hex(c2 + 1, dot, 0x1f, dev) != 0 ||
        parse_hex(dot + 1, dot + 1 + strlen(dot + 1), 7, fn) != 0)
        return -1;
    return 0;
}

static nvmlReturn_t get_handle_by_bus_id(const char *pciBusId, nvmlDevice_t *device)
{
    nvmlReturn_t r = nvml_sim_check_init();
    if (r != NVML_SUCCESS)
        return r;
    unsigned long dom, bus, dev, fn;
    if (pciBusId == NULL || device == NULL || parse_bus_id(pciBusId, &dom, &bus, &dev, &fn) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < nvml_sim_device_count(); i++) {
        const struct sim_device_info *d = sim_device((int)i);
        /* A GPU is PCI function 0. */
        if (d && fn == 0 && d->pci_domain == dom && d->pci_bus == bus && d->pci_device == dev) {
            *device = nvml_sim_handle(i);
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *pciBusId, nvmlDevice_t *device)
{
    return get_handle_by_bus_id(pciBusId, device);
}
nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)
{
    return get_handle_by_bus_id(pciBusId, device);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    const struct sim_device_info *d;
    int i;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, &i);
    if (r != NVML_SUCCESS)
        return r;
    if (index == NULL || d->parent >= 0)      /* a MIG device has no GPU index */
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned int)i;
    return NVML_SUCCESS;
}

/* The N of /dev/nvidiaN: the simulated devices are numbered as enumerated. */
nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
    return nvmlDeviceGetIndex(device, minorNumber);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, NULL);
    return r != NVML_SUCCESS ? r : nvml_sim_copy_string(name, length, d->name);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, NULL);
    return r != NVML_SUCCESS ? r : nvml_sim_copy_string(uuid, length, d->uuid_str);
}

/* The state may hold the 16-bit PCI device id or NVML's combined form. */
static unsigned int combined_device_id(const struct sim_device_info *d)
{
    return d->pci_device_id > 0xffffu ? d->pci_device_id : (d->pci_device_id << 16) | NVIDIA_PCI_VENDOR_ID;
}

/* nvmlDeviceGetPciInfo (v1) dates from the struct whose busId was 16 bytes
 * followed by 16 reserved bytes: it fills busIdLegacy and the numbers and
 * writes nothing past pciSubSystemId, so an old caller's smaller struct is
 * safe. _v2 and _v3 fill the whole struct, busId in the 8-digit format. */
static nvmlReturn_t get_pci_info(nvmlDevice_t device, nvmlPciInfo_t *pci, int version)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (pci == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT,
             d->pci_domain & 0xffffu, d->pci_bus, d->pci_device);
    pci->domain = d->pci_domain;
    pci->bus = d->pci_bus;
    pci->device = d->pci_device;
    pci->pciDeviceId = combined_device_id(d);
    pci->pciSubSystemId = d->pci_subsystem_id;
    if (version >= 2)
        snprintf(pci->busId, sizeof pci->busId, NVML_DEVICE_PCI_BUS_ID_FMT, d->pci_domain, d->pci_bus,
                 d->pci_device);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci) { return get_pci_info(device, pci, 1); }
nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci) { return get_pci_info(device, pci, 2); }
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) { return get_pci_info(device, pci, 3); }

/* The versioned form nvidia-smi 550 reads the bus id from; class 03/02, a 3D
 * controller, as datacenter GPUs are. */
nvmlReturn_t nvmlDeviceGetPciInfoExt(nvmlDevice_t device, struct nvml_sim_pci_info_ext *pci)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (pci == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (pci->version != NVML_SIM_PCI_INFO_EXT_V1)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    pci->domain = d->pci_domain;
    pci->bus = d->pci_bus;
    pci->device = d->pci_device;
    pci->pciDeviceId = combined_device_id(d);
    pci->pciSubSystemId = d->pci_subsystem_id;
    pci->baseClass = 0x03;
    pci->subClass = 0x02;
    snprintf(pci->busId, sizeof pci->busId, NVML_DEVICE_PCI_BUS_ID_FMT, d->pci_domain, d->pci_bus, d->pci_device);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (major == NULL || minor == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *major = d->cc_major;
    *minor = d->cc_minor;
    return NVML_SUCCESS;
}

/* The simulated GPU runs no kernels and memcpy is a host memcpy: there is no
 * busy time to sample, so both rates are 0 (a real idle GPU's answer). */
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    const struct sim_device_info *d;
    nvmlReturn_t r = nvml_sim_lookup(device, &d, NULL);
    if (r != NVML_SUCCESS)
        return r;
    if (utilization == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    utilization->gpu = 0;
    utilization->memory = 0;
    return NVML_SUCCESS;
}
