// `diffcl devices`: every compute device with its capabilities, as readable blocks or as JSON,
// and which one `--device auto` picks.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h" // cli_json_string, cli_json_bool

const cli_command cli_devices_command = {
    .name = "devices",
    .summary = "list compute devices, their capabilities, and which one 'auto' picks",
    .usage = "diffcl devices [--json] [--device SPEC]",
    .details = "Lists the CPU reference and every OpenCL device of every platform. The spec shown\n"
               "for each device (cpu, cl:P:D) selects it in every command's --device. A device\n"
               "is usable when it passed the capability probe; otherwise the reason is shown.\n",
    .examples = "  diffcl devices\n"
                "  diffcl devices --device cl:gpu\n"
                "  diffcl devices --json | python3 -m json.tool\n",
    .device_help = "show only the device SPEC selects, or fail listing what exists",
    .device_def = "every device",
};

static const char *or_dash(const char *s) { return cli_known(s) ? s : "-"; }

static void print_row(const char *label, const char *value) {
    printf("    %-16s%s\n", label, value);
}

static void print_bytes_row(const char *label, uint64_t bytes) {
    char buf[32];
    cli_format_bytes(buf, sizeof buf, (unsigned long long)bytes);
    print_row(label, buf);
}

static void print_text(const dcl_device_info *d, int is_auto) {
    char num[32];
    printf("[%d] %-8s %s%s\n", d->index, d->spec, d->name, is_auto ? "   <- auto" : "");
    print_row("platform", or_dash(d->platform_name));
    print_row("type", or_dash(d->type));
    print_row("vendor", or_dash(d->vendor));
    print_row("driver", or_dash(d->driver));
    print_row("OpenCL version", or_dash(d->version));
    print_row("OpenCL C", or_dash(d->c_version));
    snprintf(num, sizeof num, "%d", d->compute_units);
    print_row("compute units", num);
    print_bytes_row("global memory", d->global_mem);
    print_bytes_row("max allocation", d->max_alloc);
    snprintf(num, sizeof num, "%" PRIu64, d->max_wg_size);
    print_row("max work-group", num);
    print_bytes_row("local memory", d->local_mem);
    print_row("fp64", d->fp64 ? "yes" : "no");
    if (d->usable) print_row("usable", "yes");
    else printf("    %-16sno: %s\n", "usable", or_dash(d->why_not));
}

// "key": "value", with null for the "-" the library puts where a device has no such property.
static void json_field(const char *key, const char *value) {
    printf("      \"%s\": ", key);
    if (cli_known(value)) cli_json_string(stdout, value);
    else fputs("null", stdout);
    fputs(",\n", stdout);
}

static void json_int(const char *key, long long value) {
    printf("      \"%s\": %lld,\n", key, value);
}

static void print_json_device(const dcl_device_info *d, int is_auto) {
    fputs("    {\n", stdout);
    json_int("index", d->index);
    json_field("spec", d->spec);
    json_field("backend", d->backend == DCL_BACKEND_OPENCL ? "opencl" : "cpu");
    json_int("platform_index", d->platform);
    json_int("device_index", d->device);
    json_field("name", d->name);
    json_field("platform", d->platform_name);
    json_field("type", d->type);
    json_field("vendor", d->vendor);
    json_field("driver_version", d->driver);
    json_field("opencl_version", d->version);
    json_field("opencl_c_version", d->c_version);
    json_int("compute_units", d->compute_units);
    json_int("global_mem_bytes", (long long)d->global_mem);
    json_int("max_alloc_bytes", (long long)d->max_alloc);
    json_int("local_mem_bytes", (long long)d->local_mem);
    json_int("max_work_group_size", (long long)d->max_wg_size);
    fputs("      \"fp64\": ", stdout);
    cli_json_bool(stdout, d->fp64);
    fputs(",\n      \"usable\": ", stdout);
    cli_json_bool(stdout, d->usable);
    fputs(",\n      \"why_not\": ", stdout);
    if (d->usable) fputs("null", stdout);
    else cli_json_string(stdout, d->why_not);
    fputs(",\n      \"auto\": ", stdout);
    cli_json_bool(stdout, is_auto);
    fputs("\n    }", stdout);
}

static const char *no_opencl_note(int n_platforms, int n_opencl) {
    if (n_platforms == 0)
        return "no OpenCL platform found (no ICD installed, or diffcl built without OpenCL): "
               "only the CPU reference is available";
    if (n_opencl == 0) return "OpenCL platforms found, but they have no devices";
    return NULL;
}

// Prints list[first..last] (one device, or all) as JSON: {"devices": [...], "auto": spec, ...}.
static void print_json(const dcl_device_info *list, int first, int last, int auto_i,
                       int n_platforms, const char *note) {
    fputs("{\n  \"devices\": [\n", stdout);
    for (int i = first; i <= last; i++) {
        print_json_device(&list[i], i == auto_i);
        fputs(i < last ? ",\n" : "\n", stdout);
    }
    fputs("  ],\n  \"auto\": ", stdout);
    if (auto_i >= 0) cli_json_string(stdout, list[auto_i].spec);
    else fputs("null", stdout);
    printf(",\n  \"opencl_platforms\": %d", n_platforms);
    if (note) {
        fputs(",\n  \"note\": ", stdout);
        cli_json_string(stdout, note);
    }
    fputs("\n}\n", stdout);
}

int cli_cmd_devices(int argc, char **argv) {
    int json = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"json", 'j', CLI_OPT_FLAG, &json, NULL, "print JSON: {\"devices\": [...], \"auto\": spec}",
         NULL, 0, 0},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_devices_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;

    dcl_device_info *list = NULL;
    int n = 0, n_platforms = 0;
    dcl_status s = dcl_device_list(&list, &n, &n_platforms);
    if (s != DCL_OK) return cli_report(s);

    int auto_i = -1;
    char auto_error[512] = ""; // why "auto" picks nothing (a bad DIFFCL_AUTO)
    if (dcl_device_select(list, n, "auto", &auto_i) != DCL_OK) {
        auto_i = -1;
        snprintf(auto_error, sizeof auto_error, "%s", dcl_last_error());
    }
    dcl_clear_error(); // a failed "auto" is shown as "auto": null, not as an error

    int first = 0, last = n - 1;
    if (common.device && strcmp(common.device, "all") != 0) {
        s = dcl_device_select(list, n, common.device, &first);
        if (s != DCL_OK) {
            free(list);
            return cli_report(s);
        }
        last = first;
    }
    int n_opencl = 0;
    for (int i = 0; i < n; i++) n_opencl += list[i].backend == DCL_BACKEND_OPENCL;
    const char *note = no_opencl_note(n_platforms, n_opencl);

    if (json) {
        print_json(list, first, last, auto_i, n_platforms, note);
    } else {
        for (int i = first; i <= last; i++) {
            print_text(&list[i], i == auto_i);
            if (i < last) putchar('\n');
        }
        if (first != last || auto_i < 0 || auto_i != first) {
            if (auto_i >= 0)
                printf("\n--device auto picks [%d] %s (%s): %s\n", auto_i, list[auto_i].spec,
                       list[auto_i].name, dcl_device_auto_why(list, n, auto_i));
            else printf("\n--device auto picks nothing%s%s\n", *auto_error ? ": " : "", auto_error);
        } else {
            printf("\n--device auto picks it: %s\n", dcl_device_auto_why(list, n, auto_i));
        }
        if (note) printf("note: %s\n", note);
    }
    free(list);
    return CLI_EXIT_OK;
}
