/* Output shared by the commands that show nodes: kind words and the JSON
 * members of a node (through util/json.h, the one JSON writer). */
#include <stdio.h>

#include "cli/cli.h"
#include "util/json.h"

const char *cli_kind_name(enum cas_node_kind k) {
        return k == CAS_NODE_DIRECTORY ? "directory" : k == CAS_NODE_FILE ? "file" : "symlink";
}

const char *cli_kind_word(const struct cas_node *n) {
        if (n->kind == CAS_NODE_DIRECTORY)
                return "dir ";
        if (n->kind == CAS_NODE_SYMLINK)
                return "link";
        return n->executable ? "exec" : "file";
}

void cli_json_node(FILE *f, const struct cas_node *n) {
        fprintf(f, "\"kind\":\"%s\"", cli_kind_name(n->kind));
        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                fprintf(f, ",\"digest\":\"%s\",\"entries\":%llu", CAS_DIGEST_B3(&n->digest),
                        (unsigned long long) n->size);
                break;
        case CAS_NODE_FILE:
                fprintf(f, ",\"digest\":\"%s\",\"size\":%llu,\"executable\":%s", CAS_DIGEST_B3(&n->digest),
                        (unsigned long long) n->size, n->executable ? "true" : "false");
                break;
        case CAS_NODE_SYMLINK:
                fputs(",\"target\":", f);
                json_string(f, n->target, n->target_len);
                break;
        }
}
