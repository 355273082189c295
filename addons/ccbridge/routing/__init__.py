"""Subagent routing: which requests go to which provider and model, and what that model accepts."""

from ccbridge.routes import Provider, Route, RoutingSettings
from ccbridge.routing.agents import (
    AgentCall,
    AgentDefinition,
    AgentDefinitions,
    AgentMemory,
    Recognition,
    agent_calls_in,
    parse_agent_file,
    recognise_agent,
)
from ccbridge.translate.capabilities import ModelCapabilities, capabilities_for

__all__ = [
    "AgentCall",
    "AgentDefinition",
    "AgentDefinitions",
    "AgentMemory",
    "ModelCapabilities",
    "Provider",
    "Recognition",
    "Route",
    "RoutingSettings",
    "agent_calls_in",
    "capabilities_for",
    "parse_agent_file",
    "recognise_agent",
]
