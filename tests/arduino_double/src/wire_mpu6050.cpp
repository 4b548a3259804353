// The I2C bus of the double with one device: an emulated InvenSense MPU-6050 at 0x68 (register map
// RM-MPU-6000A rev. 4.2: WHO_AM_I, PWR_MGMT_1 with its sleep bit set at reset, the full-scale
// selects of GYRO_CONFIG and ACCEL_CONFIG, data registers 0x3B..0x48 big-endian). Its readings
// come from a raw-window data blob of 6 channels (acceleration in g, angular rate in rad/s, as
// HAR), played in order: each read of the data registers starting at ACCEL_XOUT_H serves the
// recording's next reading. (A real MPU-6050 serves its latest sample; a node reading at the
// sample rate sees the same sequence.) After the recording it serves zeros under no label.
// `--imu none` leaves the bus empty: a board whose IMU is unplugged.
#include <Wire.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arduino_double.h"
#include "tinyfl/blob.h"

TwoWire Wire;

namespace {

constexpr uint8_t kAddress = 0x68;
constexpr uint8_t kGyroConfig = 0x1B, kAccelConfig = 0x1C, kAccelXoutH = 0x3B, kPwrMgmt1 = 0x6B, kWhoAmI = 0x75;
constexpr uint16_t kChannels = 6;

struct Mpu6050 {
  bool present = false;
  uint8_t regs[128] = {};
  uint8_t pointer = 0;
  tinyfl::BlobView blob{};
  uint32_t next = 0;   // the next reading of the recording
  uint32_t total = 0;  // readings in the recording
  int16_t label = -1;  // of the reading served last

  void reset() {
    for (uint8_t& r : regs) r = 0;
    regs[kPwrMgmt1] = 0x40;  // asleep
    regs[kWhoAmI] = kAddress;
  }

  static void put(uint8_t* p, double counts) {
    const long c = lrint(counts < -32768.0 ? -32768.0 : (counts > 32767.0 ? 32767.0 : counts));
    p[0] = static_cast<uint8_t>((c >> 8) & 0xFF);
    p[1] = static_cast<uint8_t>(c & 0xFF);
  }

  // The next reading into the data registers, in counts of the selected full scales.
  void latch() {
    const double per_g = 16384.0 / (1 << ((regs[kAccelConfig] >> 3) & 3));
    const double per_rad_s = 131.0 / (1 << ((regs[kGyroConfig] >> 3) & 3)) * 57.29577951308232;
    double v[kChannels] = {};
    label = -1;
    if ((regs[kPwrMgmt1] & 0x40) == 0 && next < total) {
      const uint32_t at = next * kChannels;  // windows lie side by side: one long recording
      const int8_t* codes = blob.samples + at;
      for (uint16_t c = 0; c < kChannels; ++c) v[c] = static_cast<double>(blob.value(codes[c]));
      label = blob.label(at / blob.dim);
      ++next;
    }
    for (int i = 0; i < 3; ++i) {
      put(regs + kAccelXoutH + 2 * i, v[i] * per_g);
      put(regs + kAccelXoutH + 8 + 2 * i, v[3 + i] * per_rad_s);
    }
    put(regs + kAccelXoutH + 6, 0.0);  // temperature register: 36.53 °C
  }
} imu;

}  // namespace

namespace arduino_double {

int16_t world_label() { return imu.label; }

uint16_t load_imu(const char* path) {
  if (strcmp(path, "none") == 0) return 6;  // an empty bus: the IMU unplugged
  FILE* f = fopen(path, "rb");
  if (f == nullptr) {
    fprintf(stderr, "error: cannot read the IMU recording %s\n", path);
    exit(2);
  }
  static uint8_t bytes[16u << 20];
  const size_t n = fread(bytes, 1, sizeof bytes, f);
  fclose(f);
  const tinyfl::Status s = tinyfl::parse_blob(bytes, n, &imu.blob);
  if (s != tinyfl::Status::Ok || imu.blob.kind != static_cast<uint8_t>(tinyfl::BlobKind::RawWindows) ||
      imu.blob.dim % kChannels != 0) {
    fprintf(stderr, "error: %s is no raw-window blob of %u channels (%s)\n", path, kChannels, tinyfl::status_name(s));
    exit(2);
  }
  imu.present = true;
  imu.reset();
  imu.total = imu.blob.n_samples * (imu.blob.dim / kChannels);
  return imu.blob.n_classes;
}

}  // namespace arduino_double

void TwoWire::beginTransmission(uint8_t address) {
  address_ = address;
  tx_len_ = 0;
}

size_t TwoWire::write(uint8_t b) {
  if (tx_len_ == sizeof tx_) return 0;
  tx_[tx_len_++] = b;
  return 1;
}

uint8_t TwoWire::endTransmission(bool) {
  if (address_ != kAddress || !imu.present) return 2;
  if (tx_len_ == 0) return 0;
  imu.pointer = tx_[0] & 0x7F;
  for (size_t i = 1; i < tx_len_; ++i) {
    if (imu.pointer != kWhoAmI) imu.regs[imu.pointer] = tx_[i];
    imu.pointer = (imu.pointer + 1) & 0x7F;
  }
  return 0;
}

uint8_t TwoWire::requestFrom(uint8_t address, uint8_t len) {
  rx_head_ = rx_len_ = 0;
  if (address != kAddress || !imu.present || len > sizeof rx_) return 0;
  if (imu.pointer == kAccelXoutH) imu.latch();
  for (uint8_t i = 0; i < len; ++i) {
    rx_[rx_len_++] = imu.regs[imu.pointer];
    imu.pointer = (imu.pointer + 1) & 0x7F;
  }
  return len;
}
