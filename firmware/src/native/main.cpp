// native: a TinyFL node as a Linux process, speaking MQTT over TCP.
//   program --id NODE --broker HOST:PORT --data FILE [--prefix tinyfl/FLEET] [--keepalive S]
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_native.h"
#include "tinyfl/blob.h"
#include "tinyfl/node.h"

namespace {

constexpr size_t kMaxBlobBytes = 16u << 20;
uint8_t blob_bytes[kMaxBlobBytes];
tinyfl::CacheStorage<> sample_storage;
tinyfl::EmbeddingCache sample_cache(sample_storage);

struct Args {
  const char* id = nullptr;
  const char* broker = "127.0.0.1:1883";
  const char* data = nullptr;
  const char* prefix = "tinyfl/default";
  unsigned keepalive = 0;
};

int usage(const char* why) {
  fprintf(stderr,
          "error: %s\nusage: tinyfl-node --id NODE --broker HOST:PORT --data FILE "
          "[--prefix tinyfl/FLEET] [--keepalive SECONDS]\n",
          why);
  return 2;
}

bool parse_args(int argc, char** argv, Args* a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char* k = argv[i];
    const char* v = argv[i + 1];
    if (strcmp(k, "--id") == 0) a->id = v;
    else if (strcmp(k, "--broker") == 0) a->broker = v;
    else if (strcmp(k, "--data") == 0) a->data = v;
    else if (strcmp(k, "--prefix") == 0) a->prefix = v;
    else if (strcmp(k, "--keepalive") == 0) a->keepalive = static_cast<unsigned>(atoi(v));
    else return false;
  }
  return argc % 2 == 1 && a->id != nullptr && a->data != nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, &args)) return usage("bad arguments");
  static char host[256];
  const char* colon = strrchr(args.broker, ':');
  if (colon == nullptr || static_cast<size_t>(colon - args.broker) >= sizeof host)
    return usage("--broker must be HOST:PORT");
  memcpy(host, args.broker, static_cast<size_t>(colon - args.broker));
  const int port_number = atoi(colon + 1);
  if (port_number <= 0 || port_number > 65535) return usage("bad broker port");

  FILE* f = fopen(args.data, "rb");
  if (f == nullptr) {
    fprintf(stderr, "error: cannot open data file %s\n", args.data);
    return 1;
  }
  const size_t n = fread(blob_bytes, 1, sizeof blob_bytes, f);
  fclose(f);
  tinyfl::BlobView blob;
  tinyfl::Status s = tinyfl::parse_blob(blob_bytes, n, &blob);
  if (s == tinyfl::Status::Ok) s = tinyfl::load_samples(blob, sample_cache);
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "error: data file %s: %s\n", args.data, tinyfl::status_name(s));
    return 1;
  }

  signal(SIGPIPE, SIG_IGN);
  static port_native::NativePort port(host, static_cast<uint16_t>(port_number));
  static tinyfl::Node node(port, sample_cache);
  tinyfl::NodeConfig config{};
  config.node_id = args.id;
  config.topic_prefix = args.prefix;
  config.keep_alive_s = static_cast<uint16_t>(args.keepalive);
  config.board = tinyfl::Board::Native;
  blob.copy_model_hash(config.model_hash);
  s = node.begin(config);
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "error: node configuration: %s\n", tinyfl::status_name(s));
    return 2;
  }
  node.run();
}
