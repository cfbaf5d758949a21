// S3's XML responses (errors, ListObjectsV2), read for the few elements chute needs.
#pragma once

#include <string>

namespace chute::storage {

// The raw text between the first <tag> and </tag> in `body`, or "".
std::string XmlField(const std::string& body, const std::string& tag);
// XML character data as text: the five named entities and ASCII numeric references
// undone (S3 sends other characters as UTF-8).
std::string XmlText(const std::string& xml);

}  // namespace chute::storage
