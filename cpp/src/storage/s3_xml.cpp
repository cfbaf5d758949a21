#include "storage/s3_xml.h"

#include <cstdlib>
#include <string_view>
#include <utility>

namespace chute::storage {

std::string XmlField(const std::string& body, const std::string& tag) {
  auto start = body.find("<" + tag + ">");
  if (start == std::string::npos) return "";
  start += tag.size() + 2;
  auto end = body.find("</" + tag + ">", start);
  return end == std::string::npos ? "" : body.substr(start, end - start);
}

std::string XmlText(const std::string& xml) {
  static const std::pair<std::string_view, char> kNamed[] = {
      {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  std::string out;
  for (size_t i = 0; i < xml.size(); ++i) {
    size_t semi = xml[i] == '&' ? xml.find(';', i) : std::string::npos;
    int c = -1;
    if (semi != std::string::npos) {
      std::string_view name(xml.data() + i + 1, semi - i - 1);
      for (auto [entity, value] : kNamed)
        if (name == entity) c = value;
      if (name.size() > 1 && name[0] == '#') {
        unsigned long cp = name[1] == 'x' ? std::strtoul(std::string(name.substr(2)).c_str(), nullptr, 16)
                                          : std::strtoul(std::string(name.substr(1)).c_str(), nullptr, 10);
        if (cp < 0x80) c = static_cast<int>(cp);
      }
    }
    if (c < 0) {
      out += xml[i];
    } else {
      out += static_cast<char>(c);
      i = semi;
    }
  }
  return out;
}

}  // namespace chute::storage
