// Decoding of policy text into the proto, by reflection over the schema so
// that every field of policy.proto is reachable from a file and every key of
// a file is checked against the schema.
#include "agent/policy/loader.h"

#include <errno.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace seccomp_agent {
namespace {

// Parses without building nodes (to count documents).
class DiscardEvents : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string Join(absl::string_view base, absl::string_view name) {
  if (base.empty()) return std::string(name);
  return absl::StrCat(base, ".", name);
}

const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

bool IsErrnoField(const FieldDescriptor* f) {
  const std::string& n = f->full_name();
  return n == "seccompagent.v1.Deny.errno_code" ||
         n == "seccompagent.v1.InjectionSettings.strict_errno" ||
         n == "seccompagent.v1.PluginConfig.error_errno";
}

// The name a field has in files (`errno` for Deny.errno_code).
std::string FileName(const FieldDescriptor* f) {
  if (f->full_name() == "seccompagent.v1.Deny.errno_code") return "errno";
  return f->name();
}

const FieldDescriptor* FindFileField(const Descriptor* d, absl::string_view key) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (FileName(d->field(i)) == key) return d->field(i);
  }
  return nullptr;
}

std::string KnownFields(const Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) names.push_back(FileName(d->field(i)));
  return absl::StrJoin(names, ", ");
}

std::string EnumChoices(const google::protobuf::EnumDescriptor* e) {
  std::vector<std::string> names;
  for (int i = 0; i < e->value_count(); ++i) {
    if (e->value(i)->number() != 0) names.push_back(absl::AsciiStrToLower(e->value(i)->name()));
  }
  return absl::StrJoin(names, "|");
}

class Decoder {
 public:
  explicit Decoder(absl::string_view source) : source_(source) {}

  absl::Status DecodeMessage(const YAML::Node& node, Message* msg, const std::string& rule,
                             const std::string& field) {
    if (!node.IsNull() && !node.IsMap()) {
      return PolicyError(source_, rule, field,
                         absl::StrCat("expected a mapping, got ", KindName(node)));
    }
    const Descriptor* d = msg->GetDescriptor();
    const Reflection* r = msg->GetReflection();
    std::vector<std::string> seen;
    for (auto it = node.begin(); node.IsMap() && it != node.end(); ++it) {
      if (!it->first.IsScalar()) {
        return PolicyError(source_, rule, field, "keys must be plain strings");
      }
      const std::string& key = it->first.Scalar();
      const std::string path = Join(field, key);
      for (const std::string& s : seen) {
        if (s == key) return PolicyError(source_, rule, path, "duplicate key");
      }
      seen.push_back(key);
      const FieldDescriptor* f = FindFileField(d, key);
      if (f == nullptr) {
        return PolicyError(
            source_, rule, field,
            absl::StrCat("unknown field \"", key, "\" (expected one of: ", KnownFields(d), ")"));
      }
      const google::protobuf::OneofDescriptor* oneof = f->real_containing_oneof();
      if (oneof != nullptr && r->HasOneof(*msg, oneof)) {
        return PolicyError(
            source_, rule, path,
            absl::StrCat("only one of ", OneofChoices(oneof), " may be set (\"",
                         FileName(r->GetOneofFieldDescriptor(*msg, oneof)), "\" is set too)"));
      }
      SA_RETURN_IF_ERROR(DecodeField(it->second, msg, f, rule, path));
    }
    // `deny: {}` means EPERM.
    if (d->full_name() == "seccompagent.v1.Deny") {
      const FieldDescriptor* f = d->FindFieldByName("errno_code");
      if (r->GetInt32(*msg, f) == 0) r->SetInt32(msg, f, EPERM);
    }
    return absl::OkStatus();
  }

 private:
  static std::string OneofChoices(const google::protobuf::OneofDescriptor* o) {
    std::vector<std::string> names;
    for (int i = 0; i < o->field_count(); ++i) names.push_back(FileName(o->field(i)));
    return absl::StrJoin(names, ", ");
  }

  absl::Status DecodeField(const YAML::Node& v, Message* msg, const FieldDescriptor* f,
                           const std::string& rule, const std::string& path) {
    const Reflection* r = msg->GetReflection();
    if (f->is_map()) {
      if (v.IsNull()) return absl::OkStatus();
      if (!v.IsMap()) {
        return PolicyError(source_, rule, path,
                           absl::StrCat("expected a mapping, got ", KindName(v)));
      }
      std::vector<std::string> seen;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!it->first.IsScalar()) {
          return PolicyError(source_, rule, path, "keys must be plain strings");
        }
        const std::string& key = it->first.Scalar();
        const std::string epath = absl::StrCat(path, "[\"", key, "\"]");
        for (const std::string& s : seen) {
          if (s == key) return PolicyError(source_, rule, epath, "duplicate key");
        }
        seen.push_back(key);
        Message* entry = r->AddMessage(msg, f);
        const Descriptor* ed = entry->GetDescriptor();
        SA_RETURN_IF_ERROR(SetScalar(it->first, entry, ed->map_key(), rule, epath));
        SA_RETURN_IF_ERROR(SetScalar(it->second, entry, ed->map_value(), rule, epath));
      }
      return absl::OkStatus();
    }
    if (f->is_repeated()) {
      if (v.IsNull()) return absl::OkStatus();
      if (!v.IsSequence()) {
        return PolicyError(source_, rule, path, absl::StrCat("expected a list, got ", KindName(v)));
      }
      // Rules and plugins are labeled by index and name in errors.
      const bool labeled = f->full_name() == "seccompagent.v1.Policy.rules" ||
                           f->full_name() == "seccompagent.v1.Policy.plugins";
      for (size_t i = 0; i < v.size(); ++i) {
        const YAML::Node e = v[i];
        const std::string epath = absl::StrCat(path, "[", i, "]");
        if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
          SA_RETURN_IF_ERROR(SetScalar(e, msg, f, rule, epath));
        } else if (labeled) {
          SA_RETURN_IF_ERROR(
              DecodeMessage(e, r->AddMessage(msg, f), ItemLabel(f->name(), i, YamlName(e)), ""));
        } else {
          SA_RETURN_IF_ERROR(DecodeMessage(e, r->AddMessage(msg, f), rule, epath));
        }
      }
      return absl::OkStatus();
    }
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Message* sub = r->MutableMessage(msg, f);
      // Short form `plugin: NAME`.
      if (f->message_type()->full_name() == "seccompagent.v1.PluginRef" && v.IsScalar()) {
        return SetScalar(v, sub, f->message_type()->FindFieldByName("name"), rule, path);
      }
      return DecodeMessage(v, sub, rule, path);
    }
    return SetScalar(v, msg, f, rule, path);
  }

  // The item's name as written, for the labels of errors inside it.
  static std::string YamlName(const YAML::Node& rule) {
    if (!rule.IsMap()) return "";
    for (auto it = rule.begin(); it != rule.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "name" && it->second.IsScalar()) {
        return it->second.Scalar();
      }
    }
    return "";
  }

  // Sets (or adds, for repeated fields) a scalar field from the node's text.
  absl::Status SetScalar(const YAML::Node& v, Message* msg, const FieldDescriptor* f,
                         const std::string& rule, const std::string& path) {
    const Reflection* r = msg->GetReflection();
    const bool rep = f->is_repeated();
    if (!v.IsScalar()) {
      return PolicyError(source_, rule, path,
                         absl::StrCat("expected ", TypeName(f), ", got ", KindName(v)));
    }
    const std::string& text = v.Scalar();
    auto bad = [&](absl::string_view what) {
      return PolicyError(source_, rule, path,
                         absl::StrCat("expected ", what, ", got \"", text, "\""));
    };
    if (IsErrnoField(f)) {
      int e = ErrnoFromString(text);
      if (e < 0) {
        return PolicyError(source_, rule, path,
                           absl::StrCat("unknown errno \"", text,
                                        "\" (a name such as EPERM, or a number 1..4095)"));
      }
      rep ? r->AddInt32(msg, f, e) : r->SetInt32(msg, f, e);
      return absl::OkStatus();
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        rep ? r->AddString(msg, f, text) : r->SetString(msg, f, text);
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t x;
        if (!absl::SimpleAtoi(text, &x)) return bad("a 32-bit integer");
        rep ? r->AddInt32(msg, f, x) : r->SetInt32(msg, f, x);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t x;
        if (!absl::SimpleAtoi(text, &x)) return bad("a 64-bit integer");
        rep ? r->AddInt64(msg, f, x) : r->SetInt64(msg, f, x);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t x;
        if (!absl::SimpleAtoi(text, &x)) return bad("an integer 0..4294967295");
        rep ? r->AddUInt32(msg, f, x) : r->SetUInt32(msg, f, x);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        // 64-bit fields (scalar argument values and masks) also accept
        // 0x-prefixed hexadecimal, the natural notation for flag masks.
        uint64_t x;
        const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
        const bool ok =
            hex ? (text.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos &&
                   text.size() <= 2 + 16 && absl::SimpleHexAtoi(text.substr(2), &x))
                : absl::SimpleAtoi(text, &x);
        if (!ok) return bad("a non-negative integer (decimal or 0x hex)");
        rep ? r->AddUInt64(msg, f, x) : r->SetUInt64(msg, f, x);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool x;
        if (text == "true" || text == "True" || text == "TRUE") {
          x = true;
        } else if (text == "false" || text == "False" || text == "FALSE") {
          x = false;
        } else {
          return bad("true or false");
        }
        rep ? r->AddBool(msg, f, x) : r->SetBool(msg, f, x);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* ev =
            f->enum_type()->FindValueByName(absl::AsciiStrToUpper(text));
        if (ev == nullptr || ev->number() == 0) {
          return bad(absl::StrCat("one of ", EnumChoices(f->enum_type())));
        }
        rep ? r->AddEnum(msg, f, ev) : r->SetEnum(msg, f, ev);
        return absl::OkStatus();
      }
      default:
        return PolicyError(source_, rule, path, "field type not supported in files");
    }
  }

  static std::string TypeName(const FieldDescriptor* f) {
    if (IsErrnoField(f)) return "an errno";
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return "a string";
      case FieldDescriptor::CPPTYPE_BOOL:
        return "true or false";
      case FieldDescriptor::CPPTYPE_ENUM:
        return absl::StrCat("one of ", EnumChoices(f->enum_type()));
      default:
        return "an integer";
    }
  }

  std::string source_;
};

}  // namespace

std::string ItemLabel(absl::string_view list, int index, absl::string_view name) {
  if (name.empty()) return absl::StrCat(list, "[", index, "]");
  return absl::StrCat(list, "[", index, "] \"", name, "\"");
}

std::string RuleLabel(int index, absl::string_view name) { return ItemLabel("rules", index, name); }

absl::Status PolicyError(absl::string_view source, absl::string_view rule, absl::string_view field,
                         absl::string_view message) {
  std::string s(source);
  if (!rule.empty()) absl::StrAppend(&s, ": ", rule);
  if (!field.empty()) absl::StrAppend(&s, ": ", field);
  absl::StrAppend(&s, ": ", message);
  return absl::InvalidArgumentError(s);
}

absl::StatusOr<v1::Policy> ParsePolicyText(absl::string_view text, absl::string_view source) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != absl::string_view::npos && text.substr(first, 3) == "\xEF\xBB\xBF") {
    first = text.find_first_not_of(" \t\r\n", first + 3);
  }
  // JSON when the text opens an object whose first key is quoted (or is
  // "{}"); a YAML flow mapping such as "{version: 1, ...}" stays YAML.
  bool json = false;
  if (first != absl::string_view::npos && text[first] == '{') {
    size_t next = text.find_first_not_of(" \t\r\n", first + 1);
    json = next != absl::string_view::npos && (text[next] == '"' || text[next] == '}');
  }
  const char* format = json ? "JSON" : "YAML";
  // yaml-cpp and nlohmann throw; nothing below may let an exception out.
  try {
    if (json) {
      // yaml-cpp is lenient with JSON ("{"a": 1,, }" parses); check the
      // syntax strictly first, then decode through the one YAML path.
      try {
        nlohmann::json checked = nlohmann::json::parse(text.begin(), text.end());
        (void)checked;
      } catch (const nlohmann::json::parse_error& e) {
        size_t line = 1, col = 1;
        for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
          if (text[i] == '\n') {
            ++line;
            col = 1;
          } else {
            ++col;
          }
        }
        return absl::InvalidArgumentError(
            absl::StrCat(source, ":", line, ":", col, ": JSON syntax error: ", e.what()));
      }
    }
    std::vector<YAML::Node> docs;
    try {
      // Count documents first, stopping at two: yaml-cpp 0.7.0's LoadAll
      // never returns on a stray top-level ',' (it reports an empty
      // document forever without consuming the token; found by
      // agent/fuzz/policy_fuzzer, see agent/fuzz/regressions). A policy is
      // one document, so two is already an error.
      std::istringstream in{std::string(text)};
      YAML::Parser parser(in);
      DiscardEvents events;
      int count = 0;
      while (count < 2 && parser.HandleNextDocument(events)) ++count;
      if (count > 1) {
        return PolicyError(source, "", "", "more than one YAML document; a policy is one document");
      }
      if (count == 1) docs.push_back(YAML::Load(std::string(text)));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":",
                                                     e.mark.column + 1, ": ", format,
                                                     " syntax error: ", e.msg));
    }
    if (docs.size() > 1) {
      return PolicyError(source, "", "", "more than one YAML document; a policy is one document");
    }
    if (docs.empty() || docs[0].IsNull()) {
      return PolicyError(source, "", "",
                         "empty policy (expected a mapping with version, default_action, rules)");
    }
    if (!docs[0].IsMap()) {
      return PolicyError(
          source, "", "",
          absl::StrCat("expected a mapping at the top level, got ", KindName(docs[0])));
    }
    v1::Policy policy;
    Decoder d(source);
    SA_RETURN_IF_ERROR(d.DecodeMessage(docs[0], &policy, "", ""));
    return policy;
  } catch (const std::exception& e) {
    return PolicyError(source, "", "", absl::StrCat("cannot decode ", format, ": ", e.what()));
  }
}

}  // namespace seccomp_agent
