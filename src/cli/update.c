/* notegw update: status|check|apply talk to the daemon; sign|verify|extract work
 * offline on image files and need no daemon. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "update.h"

static int usage(void)
{
	fprintf(stderr, "usage: notegw update status|check|apply\n"
	                "       notegw update sign --key PRIVATE.pem [--name N] [--version V] IN OUT\n"
	                "       notegw update verify --trusted DIR IMAGE\n"
	                "       notegw update extract --trusted DIR IMAGE OUT\n");
	return CLI_USAGE;
}

static void print_info(struct cli *cli, const struct update_info *in, const char *verdict)
{
	if (cli->json) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "verdict", verdict, "name",
		                      in->name, "version", in->version, "alg", in->alg, "key",
		                      in->key_id, "length", (json_int_t)in->length, "sha256",
		                      in->sha256);
		cli_print_json(o);
		json_decref(o);
		return;
	}
	printf("%s: %s %s (%llu bytes, sha256 %s), signed %s by key %.16s…\n", verdict, in->name,
	       in->version, (unsigned long long)in->length, in->sha256, in->alg, in->key_id);
}

static int offline(struct cli *cli, const char *op, int argc, char **argv)
{
	static const struct option o[] = {{"key", required_argument, NULL, 'k'},
	                                   {"trusted", required_argument, NULL, 't'},
	                                   {"name", required_argument, NULL, 'n'},
	                                   {"version", required_argument, NULL, 'v'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {0}};
	const char *key = NULL, *trusted = NULL, *name = "notegw", *version = PACKAGE_VERSION;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:t:n:v:j", o, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 't': trusted = optarg; break;
		case 'n': name = optarg; break;
		case 'v': version = optarg; break;
		case 'j': cli->json = true; break;
		default: return usage();
		}
	}
	int rest = argc - optind;
	const char *why = "unknown error";
	struct update_info info;
	if (strcmp(op, "sign") == 0) {
		if (!key || rest != 2)
			return usage();
		int r = update_sign(key, argv[optind], argv[optind + 1], name, version, &why);
		if (r < 0) {
			fprintf(stderr, "notegw: update sign: %s\n", why);
			return CLI_REFUSED;
		}
		if (update_parse_file_quiet(argv[optind + 1], &info) == 0)
			print_info(cli, &info, "signed");
		return CLI_OK;
	}
	if (!trusted || rest != (strcmp(op, "extract") == 0 ? 2 : 1))
		return usage();
	int r = update_verify(trusted, argv[optind], &info, &why);
	if (r < 0) {
		fprintf(stderr, "notegw: update %s: %s: %s\n", op, argv[optind], why);
		return CLI_REFUSED;
	}
	if (strcmp(op, "extract") == 0) {
		r = update_extract(argv[optind], &info, argv[optind + 1]);
		if (r < 0) {
			fprintf(stderr, "notegw: update extract: %s: %s\n", argv[optind + 1],
			        strerror(-r));
			return CLI_REFUSED;
		}
	}
	print_info(cli, &info, "authentic");
	return CLI_OK;
}

static int cmd_update(struct cli *cli, int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *op = argv[1];
	if (strcmp(op, "sign") == 0 || strcmp(op, "verify") == 0 || strcmp(op, "extract") == 0)
		return offline(cli, op, argc - 1, argv + 1);
	if (strcmp(op, "status") != 0 && strcmp(op, "check") != 0 && strcmp(op, "apply") != 0)
		return usage();
	json_t *req = json_pack("{s:s,s:s}", "cmd", "update", "op", op), *rsp = NULL;
	int r = cli_call(cli, req, &rsp);
	json_decref(req);
	if (r != CLI_OK)
		return r;
	json_t *u = json_object_get(rsp, "update");
	if (cli->json) {
		cli_print_json(u ? u : rsp);
	} else {
		const char *k;
		json_t *v;
		json_object_foreach(u, k, v) {
			char *s = json_is_string(v) ? strdup(json_string_value(v))
			                            : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			printf("%-12s %s\n", k, s ? s : "");
			free(s);
		}
	}
	json_decref(rsp);
	return CLI_OK;
}

const struct cli_cmd cli_cmds_update[] = {
	{"update", "status|check|apply | sign --key K IN OUT | verify --trusted DIR IMAGE",
	 "host software updates through the Notecard; sign and verify images offline", cmd_update},
	{0},
};
