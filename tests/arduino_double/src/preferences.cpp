// Preferences over one file (--nvs FILE): "TFNV", then per blob u8 name length, "namespace/key",
// u32 length (little-endian), bytes. The whole file is rewritten through a rename at every change.
#include <Preferences.h>
#include <stdio.h>
#include <string.h>

#include <map>
#include <string>
#include <vector>

#include "arduino_double.h"

namespace {

using Blobs = std::map<std::string, std::vector<uint8_t>>;

bool load_file(const char* path, Blobs* out) {
  out->clear();
  FILE* f = fopen(path, "rb");
  if (f == nullptr) return true;  // no file yet: an empty NVS
  std::vector<uint8_t> data;
  uint8_t buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) data.insert(data.end(), buf, buf + n);
  fclose(f);
  if (data.empty()) return true;
  if (data.size() < 4 || memcmp(data.data(), "TFNV", 4) != 0) return false;
  for (size_t at = 4; at < data.size();) {
    const size_t name_len = data[at++];
    if (data.size() - at < name_len + 4) return false;
    std::string name(reinterpret_cast<const char*>(data.data() + at), name_len);
    at += name_len;
    const uint32_t len = data[at] | data[at + 1] << 8 | data[at + 2] << 16 | static_cast<uint32_t>(data[at + 3]) << 24;
    at += 4;
    if (data.size() - at < len) return false;
    (*out)[name] = std::vector<uint8_t>(data.begin() + static_cast<long>(at), data.begin() + static_cast<long>(at + len));
    at += len;
  }
  return true;
}

bool save_file(const char* path, const Blobs& blobs) {
  std::string tmp = std::string(path) + ".tmp";
  FILE* f = fopen(tmp.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = fwrite("TFNV", 1, 4, f) == 4;
  for (const auto& [name, value] : blobs) {
    const uint8_t name_len = static_cast<uint8_t>(name.size());
    const uint32_t n = static_cast<uint32_t>(value.size());
    const uint8_t len[4] = {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n >> 16),
                            static_cast<uint8_t>(n >> 24)};
    ok = ok && fwrite(&name_len, 1, 1, f) == 1 && fwrite(name.data(), 1, name.size(), f) == name.size() &&
         fwrite(len, 1, 4, f) == 4 && fwrite(value.data(), 1, value.size(), f) == value.size();
  }
  ok = fclose(f) == 0 && ok;
  return ok && rename(tmp.c_str(), path) == 0;
}

std::string full_name(const char* ns, const char* key) { return std::string(ns) + "/" + key; }

}  // namespace

bool Preferences::begin(const char* name, bool read_only) {
  const char* path = arduino_double::settings().nvs_path;
  Blobs blobs;
  // As NVS: a namespace name of 1..15 characters; no NVS (no --nvs) or a damaged file fails.
  if (path == nullptr || strlen(name) == 0 || strlen(name) >= sizeof name_ || !load_file(path, &blobs)) return false;
  strcpy(name_, name);
  read_only_ = read_only;
  open_ = true;
  return true;
}

bool Preferences::isKey(const char* key) { return getBytesLength(key) > 0; }

size_t Preferences::getBytesLength(const char* key) {
  Blobs blobs;
  if (!open_ || !load_file(arduino_double::settings().nvs_path, &blobs)) return 0;
  const auto it = blobs.find(full_name(name_, key));
  return it == blobs.end() ? 0 : it->second.size();
}

size_t Preferences::getBytes(const char* key, void* buf, size_t max_len) {
  Blobs blobs;
  if (!open_ || !load_file(arduino_double::settings().nvs_path, &blobs)) return 0;
  const auto it = blobs.find(full_name(name_, key));
  if (it == blobs.end() || it->second.size() > max_len) return 0;
  memcpy(buf, it->second.data(), it->second.size());
  return it->second.size();
}

size_t Preferences::putBytes(const char* key, const void* value, size_t len) {
  const char* path = arduino_double::settings().nvs_path;
  Blobs blobs;
  if (!open_ || read_only_ || len == 0 || !load_file(path, &blobs)) return 0;
  const auto* bytes = static_cast<const uint8_t*>(value);
  blobs[full_name(name_, key)] = std::vector<uint8_t>(bytes, bytes + len);
  return save_file(path, blobs) ? len : 0;
}

bool Preferences::remove(const char* key) {
  const char* path = arduino_double::settings().nvs_path;
  Blobs blobs;
  if (!open_ || read_only_ || !load_file(path, &blobs)) return false;
  return blobs.erase(full_name(name_, key)) == 1 && save_file(path, blobs);
}
