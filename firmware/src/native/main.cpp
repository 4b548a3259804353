// native: a TinyFL node as a Linux process, speaking MQTT over TCP.
//   program --id NODE --broker HOST:PORT --data FILE [--prefix tinyfl/FLEET] [--keepalive S]
//   program --config node.cfg --broker HOST:PORT --data FILE   (id, prefix, keep-alive and MQTT
//                                      credentials from a node config record, docs/WIRE.md: keeps
//                                      the password off the command line)
//   ... [--state FILE [--state-word-us N]]   (persisted state, tinyfl/node_state.h: loaded at
//                                      start, saved after each round served; N > 0 emulates a
//                                      flash that takes N us per word, for power-cut tests)
//   program --data FILE --embed OUT   (raw-window blob: write every window's int8 embedding, as
//                                      the node computes it, to OUT and exit; for bit-exact checks)
//   ... --replay-hz N                 (raw-window blob: play it as a live sensor, N readings per
//                                      second, instead of loading it at boot; docs/PORTING.md)
//   ... --replay-hz N --labels topic  (the readings' labels from the operator's LABEL frames on
//                                      <prefix>/nodes/<id>/label, not from the blob; `--labels
//                                      blob` is the default)
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_native.h"
#include "tinyfl/blob.h"
#include "tinyfl/label.h"
#include "tinyfl/logline.h"
#include "tinyfl/models.h"
#include "tinyfl/node.h"
#include "tinyfl/node_config.h"
#include "tinyfl/sensor_stream.h"
#include "tinyfl/node_state.h"

namespace {

constexpr size_t kMaxBlobBytes = 16u << 20;
uint8_t blob_bytes[kMaxBlobBytes];
tinyfl::CacheStorage<> sample_storage;
tinyfl::EmbeddingCache sample_cache(sample_storage);
tinyfl::BackboneWork backbone_work;

struct Args {
  const char* id = nullptr;
  const char* broker = "127.0.0.1:1883";
  const char* data = nullptr;
  const char* prefix = "tinyfl/default";
  const char* embed = nullptr;
  const char* config = nullptr;
  unsigned keepalive = 0;
  unsigned replay_hz = 0;
  const char* state = nullptr;
  unsigned state_word_us = 0;
  bool topic_labels = false;  // --labels topic
};

tinyfl::NodeConfigRecord record;

int usage(const char* why) {
  fprintf(stderr,
          "error: %s\nusage: tinyfl-node --id NODE --broker HOST:PORT --data FILE "
          "[--prefix tinyfl/FLEET] [--keepalive SECONDS] [--state FILE [--state-word-us N]]\n"
          "       tinyfl-node --config node.cfg --broker HOST:PORT --data FILE [--state FILE]\n"
          "       tinyfl-node --data FILE --embed OUT\n"
          "       (with --config or --id: --replay-hz N plays the blob as a live sensor,\n"
          "        --labels topic takes its labels from the node's label topic, not the blob)\n",
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
    else if (strcmp(k, "--embed") == 0) a->embed = v;
    else if (strcmp(k, "--config") == 0) a->config = v;
    else if (strcmp(k, "--replay-hz") == 0) a->replay_hz = static_cast<unsigned>(atoi(v));
    else if (strcmp(k, "--state") == 0) a->state = v;
    else if (strcmp(k, "--labels") == 0) {
      if (strcmp(v, "topic") != 0 && strcmp(v, "blob") != 0) return false;
      a->topic_labels = strcmp(v, "topic") == 0;
    }
    else if (strcmp(k, "--state-word-us") == 0) {
      char* end = nullptr;
      const long us = strtol(v, &end, 10);
      if (*v == 0 || *end != 0 || us < 0 || us > 1000000) return false;  // 0 .. 1 s per word
      a->state_word_us = static_cast<unsigned>(us);
    }
    else return false;
  }
  return argc % 2 == 1 && a->data != nullptr &&
         (a->id != nullptr || a->config != nullptr || a->embed != nullptr);
}

// --embed: every window of a raw-window blob through the compiled model it names (its DSP stage, if
// any, and the backbone), written as
// n_samples x embedding_len int8 values.
int embed_all(const tinyfl::BlobView& blob, const char* out_path) {
  tinyfl::Status s = tinyfl::prepare_blob_model(blob, backbone_work, nullptr);
  FILE* out = s == tinyfl::Status::Ok ? fopen(out_path, "wb") : nullptr;
  if (s == tinyfl::Status::Ok && out == nullptr) {
    fprintf(stderr, "error: cannot write %s\n", out_path);
    return 1;
  }
  if (s == tinyfl::Status::Ok)
    s = tinyfl::embed_blob_windows(
        blob, backbone_work,
        [&](uint32_t, const int8_t* e, size_t len, uint8_t) {
          return fwrite(e, 1, len, out) == len ? tinyfl::Status::Ok : tinyfl::Status::PipeError;
        },
        nullptr);
  if (out != nullptr && fclose(out) != 0 && s == tinyfl::Status::Ok) s = tinyfl::Status::PipeError;
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "error: embedding the windows: %s\n", tinyfl::status_name(s));
    return 1;
  }
  return 0;
}

}  // namespace

// The keeper of the node's state persisted in args.state, or null (with the error printed) when
// the file cannot be opened.
tinyfl::NodeStateKeeper* open_state(tinyfl::Port& port, const Args& args) {
  static port_native::StateFile file(args.state, args.state_word_us);
  if (!file.open()) {
    fprintf(stderr, file.foreign() ? "error: %s is not a TinyFL state file; not touching it\n"
                                   : "error: cannot open state file %s\n",
            args.state);
    return nullptr;
  }
  static uint8_t record[tinyfl::kStateRecordMax];
  static tinyfl::StateStore store(file, record, sizeof record);
  static tinyfl::NodeStateKeeper keeper(store, port, sample_cache);
  return &keeper;
}

// The node config record at `path` into `record` (0 on success, else the exit code).
int read_config(const char* path) {
  static uint8_t bytes[1024];
  FILE* f = fopen(path, "rb");
  if (f == nullptr) {
    fprintf(stderr, "error: cannot open config record %s\n", path);
    return 1;
  }
  const size_t n = fread(bytes, 1, sizeof bytes, f);
  fclose(f);
  const tinyfl::Status s = tinyfl::parse_node_config(bytes, n, &record);
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "error: config record %s: %s\n", path, tinyfl::status_name(s));
    return 2;
  }
  return 0;
}

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, &args)) return usage("bad arguments");
  if (args.topic_labels && args.replay_hz == 0) return usage("--labels topic needs --replay-hz");
  if (args.config != nullptr) {
    if (args.id != nullptr) return usage("give --config or --id, not both");
    if (const int code = read_config(args.config)) return code;
    args.id = record.node_id;
    args.prefix = record.topic_prefix;
    args.keepalive = record.keep_alive_s;
  }
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
  if (s == tinyfl::Status::Ok && args.embed != nullptr) return embed_all(blob, args.embed);
  tinyfl::BlobLoad load;
  signal(SIGPIPE, SIG_IGN);
  static port_native::NativePort port(host, static_cast<uint16_t>(port_number));
  static tinyfl::SensorStream stream(backbone_work, sample_cache, port.entropy());
  static tinyfl::BlobReplay replay(blob, stream);
  tinyfl::LogLine line;
  if (s == tinyfl::Status::Ok && args.replay_hz != 0)
    s = tinyfl::begin_replay(blob, backbone_work, stream, replay, args.replay_hz, port.millis(), line);
  else if (s == tinyfl::Status::Ok)
    s = tinyfl::load_blob_samples(blob, sample_cache, backbone_work, &load);
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "error: data file %s: %s\n", args.data, tinyfl::status_name(s));
    if (s == tinyfl::Status::WrongModel && blob.kind == static_cast<uint8_t>(tinyfl::BlobKind::RawWindows)) {
      tinyfl::LogLine why;
      tinyfl::describe_missing_model(blob, why);
      fprintf(stderr, "error: %s\n", why.c_str());
    }
    return 1;
  }

  if (args.replay_hz == 0) tinyfl::describe_blob_load(blob, load, sample_cache, line);
  port.log(line.c_str());
  static tinyfl::Node node(port, sample_cache);
  static tinyfl::LabelReceiver labels(node, port, blob.n_classes);
  if (args.topic_labels) {
    labels.attach();
    replay.use_blob_labels(false);
  }
  tinyfl::NodeConfig config{};
  config.node_id = args.id;
  config.topic_prefix = args.prefix;
  config.keep_alive_s = static_cast<uint16_t>(args.keepalive);
  static tinyfl::PeerSeed peers[tinyfl::kMaxPeers];  // secure-aggregation seeds, from the record
  tinyfl::apply_config_record(record, peers, &config);
  config.board = tinyfl::Board::Native;
  blob.copy_model_hash(config.model_hash);
  if (args.replay_hz != 0) config.announced_samples = sample_cache.capacity();  // it fills as it runs
  s = node.begin(config);
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "error: node configuration: %s\n", tinyfl::status_name(s));
    return 2;
  }
  tinyfl::NodeStateKeeper* keeper = nullptr;
  if (args.state != nullptr && (keeper = open_state(port, args)) == nullptr) return 1;
  if (keeper != nullptr) (void)keeper->restore(node, config.model_hash);  // every outcome is logged
  if (args.replay_hz != 0)
    tinyfl::run_replay_node(node, port, stream, replay, sample_cache, 50, keeper,
                            args.topic_labels ? &labels : nullptr);
  if (keeper != nullptr) keeper->run(node);
  node.run();
}
