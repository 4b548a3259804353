#include "tinyfl/status.h"

namespace tinyfl {

const char* status_name(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::Truncated: return "truncated";
    case Status::TooLarge: return "too_large";
    case Status::BadMagic: return "bad_magic";
    case Status::BadVersion: return "bad_version";
    case Status::BadType: return "bad_type";
    case Status::BadCrc: return "bad_crc";
    case Status::BadLength: return "bad_length";
    case Status::BadValue: return "bad_value";
    case Status::NonFinite: return "non_finite";
    case Status::Unsupported: return "unsupported";
    case Status::WrongModel: return "wrong_model";
    case Status::WrongShape: return "wrong_shape";
    case Status::NotSelected: return "not_selected";
    case Status::StaleRound: return "stale_round";
    case Status::NoData: return "no_data";
    case Status::BufferFull: return "buffer_full";
    case Status::NotConnected: return "not_connected";
    case Status::Protocol: return "protocol";
    case Status::PipeError: return "pipe_error";
    case Status::Timeout: return "timeout";
    case Status::BadTag: return "bad_tag";
    case Status::Unauthenticated: return "unauthenticated";
    case Status::NoKey: return "no_key";
    case Status::RoundAhead: return "round_ahead";
  }
  return "unknown";
}

}  // namespace tinyfl
