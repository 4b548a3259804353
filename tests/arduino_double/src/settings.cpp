// The double's command line: the node's config record (as `tinyfl fleet` writes it for every node),
// the broker, the recording the emulated IMU plays, and the sketch's settings that differ per
// node. A bad one stops the process with status 2 and the reason.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arduino_double.h"
#include "tinyfl/node_config.h"

namespace arduino_double {

bool parse_label_pins(const char* list);  // core.cpp

namespace {

Settings current{};
tinyfl::NodeConfigRecord record;
char broker_host[256];

[[noreturn]] void usage(const char* why, const char* what) {
  fprintf(stderr,
          "error: %s%s\nusage: esp32dev-double --config node.cfg --broker HOST:PORT --imu BLOB "
          "--sensor-hz N [--stride N] [--model TASK] [--nvs FILE] [--label-pins 25,26,27] "
          "[--wifi-outage AT_S:FOR_S] [--labels pins|topic]\n",
          why, what);
  exit(2);
}

uint32_t number(const char* flag, const char* v, uint32_t lo, uint32_t hi) {
  char* end = nullptr;
  const unsigned long n = strtoul(v, &end, 10);
  if (*v == 0 || *end != 0 || n < lo || n > hi) usage("bad number for ", flag);
  return static_cast<uint32_t>(n);
}

void load_config(const char* path) {
  static uint8_t bytes[8192];
  FILE* f = fopen(path, "rb");
  if (f == nullptr) usage("cannot read ", path);
  const size_t n = fread(bytes, 1, sizeof bytes, f);
  fclose(f);
  const tinyfl::Status s = tinyfl::parse_node_config(bytes, n, &record);
  if (s != tinyfl::Status::Ok) usage("bad node config record: ", tinyfl::status_name(s));
  // The esp32dev main deals no secure-aggregation seeds (apply_provisioned_settings has none).
  if (record.n_peers != 0) usage("the esp32dev main takes part in no secure aggregation: ", path);
  current.frame_key = record.has_keys ? record.frame_key : nullptr;
  current.fleet_key = record.has_keys ? record.fleet_key : nullptr;
  current.node_id = record.node_id;
  current.topic_prefix = record.topic_prefix;
  current.username = record.username[0] != 0 ? record.username : nullptr;
  current.password = record.password[0] != 0 ? record.password : nullptr;
}

void set_broker(const char* v) {
  const char* colon = strrchr(v, ':');
  if (colon == nullptr || static_cast<size_t>(colon - v) >= sizeof broker_host) usage("--broker needs HOST:PORT: ", v);
  memcpy(broker_host, v, static_cast<size_t>(colon - v));
  broker_host[colon - v] = 0;
  current.broker_host = broker_host;
  current.broker_port = static_cast<uint16_t>(number("--broker", colon + 1, 1, 65535));
}

}  // namespace

const Settings& settings() { return current; }

void load(int argc, char** argv) {
  const char* config = nullptr;
  const char* imu = nullptr;
  current.model = "har";
  for (int i = 1; i < argc; i += 2) {
    const char* k = argv[i];
    if (i + 1 >= argc) usage("missing value for ", k);
    const char* v = argv[i + 1];
    if (strcmp(k, "--config") == 0) config = v;
    else if (strcmp(k, "--broker") == 0) set_broker(v);
    else if (strcmp(k, "--imu") == 0) imu = v;
    else if (strcmp(k, "--sensor-hz") == 0) current.sensor_hz = number(k, v, 1, 100000);
    else if (strcmp(k, "--stride") == 0) current.stride = static_cast<uint16_t>(number(k, v, 0, 65535));
    else if (strcmp(k, "--model") == 0) current.model = v;
    else if (strcmp(k, "--nvs") == 0) current.nvs_path = v;
    else if (strcmp(k, "--wifi-outage") == 0) {
      char at[16] = {};
      const char* colon = strchr(v, ':');
      if (colon == nullptr || static_cast<size_t>(colon - v) >= sizeof at) usage("--wifi-outage needs AT_S:FOR_S: ", v);
      memcpy(at, v, static_cast<size_t>(colon - v));
      current.outage_at_ms = number(k, at, 1, 86400) * 1000u;
      current.outage_ms = number(k, colon + 1, 1, 86400) * 1000u;
    } else if (strcmp(k, "--labels") == 0) {
      if (strcmp(v, "topic") != 0 && strcmp(v, "pins") != 0) usage("--labels is pins or topic: ", v);
      current.labels_from_topic = strcmp(v, "topic") == 0;
    } else if (strcmp(k, "--label-pins") == 0) {
      if (!parse_label_pins(v)) usage("--label-pins needs pin numbers like 25,26,27: ", v);
    } else usage("unknown option ", k);
  }
  if (config == nullptr || imu == nullptr || current.broker_host == nullptr || current.sensor_hz == 0)
    usage("--config, --broker, --imu and --sensor-hz are required", "");
  load_config(config);
  current.classes = load_imu(imu);
}

}  // namespace arduino_double
