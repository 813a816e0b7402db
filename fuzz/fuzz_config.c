/* Fuzz the configuration reader and the core's binding of every section. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct cfg_diag diag = {0};
	struct cfg_doc *doc = cfg_doc_parse_string(text, "fuzz.conf", &diag);
	if (doc) {
		for (const char *const *s = cfg_core_sections; *s; s++)
			cfg_doc_claim(doc, *s);
		struct cfg *cfg = cfg_from_doc(doc, "fuzz.conf", &diag);
		if (cfg) {
			cfg_doc_report_unclaimed(cfg->doc, &diag);
			cfg_free(cfg);
		} else {
			cfg_doc_free(doc);
		}
	}
	cfg_diag_clear(&diag);
	free(text);
	return 0;
}
