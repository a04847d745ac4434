/* The grpc backends of the blob, directory and PathInfo services: clients
 * of a castore, tvix-store or snix-store daemon at url (grpc+unix:///path
 * or grpc+http://host:port), each call with timeout_ms as its deadline (0:
 * 30 s).  Everything received is verified before it is returned: blobs
 * against their digest, directories against the digest asked for (and a
 * recursive answer for connectivity), PathInfos against the store path
 * asked for. */
#pragma once

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "store/pathinfosvc.h"

int remote_blob_grpc_new(const char *url, unsigned timeout_ms, struct cas_blob_service **ret);
int remote_dir_grpc_new(const char *url, unsigned timeout_ms, struct cas_dir_service **ret);
int remote_pathinfo_grpc_new(const char *url, unsigned timeout_ms, struct nix_pathinfo_service **ret);
