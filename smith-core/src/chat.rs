//! Tool calling in the OpenAI chat format: messages that carry tool calls
//! and tool results, the JSON-schema definitions of the tools offered, and
//! a model's reply to a conversation with tools. These serialize exactly as
//! OpenAI's chat completions API writes them, so trajectories made of them
//! load unchanged in tooling that reads that format.

use serde::{Deserialize, Serialize};

/// Who says a message in a conversation with tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The request, or feedback from the harness.
    User,
    /// A model reply (text, tool calls, or both).
    Assistant,
    /// The result of one tool call.
    Tool,
}

/// The function a tool call names, with its arguments as the model wrote
/// them: a JSON text, which may be malformed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
}

/// One tool call in an assistant message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id the tool result answers with.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// What to call.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

impl ToolCall {
    /// A call of `name` with `arguments` (JSON text).
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// One message of a conversation with tools.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who says it.
    pub role: ChatRole,
    /// The text (`None` for an assistant message of tool calls only).
    #[serde(default)]
    pub content: Option<String>,
    /// The tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool result: the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    fn text(role: ChatRole, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(ChatRole::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::text(ChatRole::User, content)
    }

    /// An assistant message with text and tool calls.
    pub fn assistant(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            role: ChatRole::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
            name: None,
        }
    }

    /// The result of the call `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        ChatMessage {
            role: ChatRole::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id.clone()),
            name: Some(call.function.name.clone()),
        }
    }
}

/// A function a model may call: its name, what it does, and a JSON schema
/// of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A tool offered to a model, as OpenAI's `tools` list holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: FunctionSpec,
}

impl ToolSpec {
    /// A function tool.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        ToolSpec {
            kind: function_type(),
            function: FunctionSpec {
                name: name.into(),
                description: description.into(),
                parameters,
            },
        }
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.function.name
    }
}

/// A model's reply to a conversation with tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCompletion {
    /// The assistant message (text, tool calls, or both).
    pub message: ChatMessage,
    /// Prompt tokens used, if the backend says.
    pub prompt_tokens: u64,
    /// Completion tokens used, if the backend says.
    pub completion_tokens: u64,
    /// What the call cost, when the model knows its prices.
    #[serde(default)]
    pub cost: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_in_the_openai_shape() {
        let call = ToolCall::new("c1", "bash", r#"{"command":"ls"}"#);
        let a = ChatMessage::assistant(None, vec![call.clone()]);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["role"], "assistant");
        assert!(v["content"].is_null());
        assert_eq!(v["tool_calls"][0]["type"], "function");
        assert_eq!(v["tool_calls"][0]["function"]["name"], "bash");
        assert_eq!(
            v["tool_calls"][0]["function"]["arguments"],
            r#"{"command":"ls"}"#
        );
        let t = serde_json::to_value(ChatMessage::tool_result(&call, "a.py")).unwrap();
        assert_eq!(t["role"], "tool");
        assert_eq!(t["tool_call_id"], "c1");
        assert!(t.get("tool_calls").is_none());
        let back: ChatMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
