// qemu_cortex_m4: a TinyFL node on QEMU mps2-an386. UART0 is the MQTT byte pipe (wired to the
// broker by `-serial tcp:HOST:PORT`), UART1 the log; the node's config record and data blob are put
// in PSRAM by QEMU's generic loader (see port_qemu.h for the addresses), and optionally a replay
// rate: then the blob plays as a live sensor instead of loading at boot, with its labels from the
// node's label topic when the loader also sets port_qemu::kLabelsFromTopicAddress. With a state
// file (the host sets port_qemu::kStateMarker and semihosting), the node's state persists in it.
#include "port_qemu.h"
#include "tinyfl/blob.h"
#include "tinyfl/label.h"
#include "tinyfl/logline.h"
#include "tinyfl/models.h"
#include "tinyfl/node.h"
#include "tinyfl/node_config.h"
#include "tinyfl/sensor_stream.h"
#include "tinyfl/node_state.h"

namespace {

port_qemu::QemuPort port;
tinyfl::CacheStorage<> sample_storage;
tinyfl::EmbeddingCache sample_cache(sample_storage);
tinyfl::BackboneWork backbone_work;
tinyfl::Node node(port, sample_cache);
port_qemu::SemihostingStateFile state_file(port);
uint8_t state_record[tinyfl::kStateRecordMax];
tinyfl::StateStore state_store(state_file, state_record, sizeof state_record);
tinyfl::NodeStateKeeper state_keeper(state_store, port, sample_cache);

[[noreturn]] void halt(const char* what, tinyfl::Status s) {
  tinyfl::LogLine line;
  line.str("fatal: ").str(what).str(": ").str(tinyfl::status_name(s));
  port.log(line.c_str());
  for (;;) port.wait(60000);
}

}  // namespace

int main() {
  port.begin();
  static tinyfl::NodeConfigRecord record;  // 2 KB of peer seeds: not on the stack
  tinyfl::Status s = tinyfl::parse_node_config(
      reinterpret_cast<const uint8_t*>(port_qemu::kNodeConfigAddress), port_qemu::kNodeConfigMaxBytes, &record);
  if (s != tinyfl::Status::Ok) halt("node config record at 0x21F00000", s);
  tinyfl::BlobView blob;
  s = tinyfl::parse_blob(reinterpret_cast<const uint8_t*>(port_qemu::kDataBlobAddress),
                         port_qemu::kDataBlobMaxBytes, &blob);
  if (s != tinyfl::Status::Ok) halt("data blob at 0x21000000", s);
  const uint32_t replay_hz = *reinterpret_cast<const volatile uint32_t*>(port_qemu::kReplayRateAddress);
  const bool topic_labels =
      replay_hz != 0 && *reinterpret_cast<const volatile uint32_t*>(port_qemu::kLabelsFromTopicAddress) == 1;
  static tinyfl::SensorStream stream(backbone_work, sample_cache, port.entropy());
  static tinyfl::BlobReplay replay(blob, stream);
  tinyfl::BlobLoad load;
  tinyfl::LogLine line;
  if (replay_hz != 0) {
    s = tinyfl::begin_replay(blob, backbone_work, stream, replay, replay_hz, port.millis(), line);
  } else {
    s = tinyfl::load_blob_samples(blob, sample_cache, backbone_work, &load);
    if (s == tinyfl::Status::Ok) tinyfl::describe_blob_load(blob, load, sample_cache, line);
  }
  if (s == tinyfl::Status::WrongModel && load.model == nullptr) {
    tinyfl::LogLine why;
    tinyfl::describe_missing_model(blob, why);
    port.log(why.c_str());
  }
  if (s != tinyfl::Status::Ok) halt(load.model == nullptr ? "samples" : "samples through the backbone", s);
  port.log(line.c_str());

  static tinyfl::LabelReceiver labels(node, port, blob.n_classes);
  if (topic_labels) {
    labels.attach();
    replay.use_blob_labels(false);
  }
  tinyfl::NodeConfig config{};
  config.node_id = record.node_id;
  config.topic_prefix = record.topic_prefix;
  config.keep_alive_s = record.keep_alive_s;
  static tinyfl::PeerSeed peers[tinyfl::kMaxPeers];  // secure-aggregation seeds, from the record
  tinyfl::apply_config_record(record, peers, &config);
  config.board = tinyfl::Board::QemuCortexM4;
  blob.copy_model_hash(config.model_hash);
  if (replay_hz != 0) config.announced_samples = sample_cache.capacity();  // it fills as it runs
  s = node.begin(config);
  if (s != tinyfl::Status::Ok) halt("node config", s);
  tinyfl::NodeStateKeeper* keeper = nullptr;
  if (port_qemu::SemihostingStateFile::requested()) {  // a state file given: the state persists in it
    keeper = &state_keeper;
    (void)keeper->restore(node, config.model_hash, state_file.open());  // every outcome is logged
  }
  if (replay_hz != 0)
    tinyfl::run_replay_node(node, port, stream, replay, sample_cache, 50, keeper, topic_labels ? &labels : nullptr);
  if (keeper != nullptr) keeper->run(node);
  node.run();
}
